"""The gettext catalogs: complete, well-formed, and what the pages actually speak."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from citybrain.config import SUPPORTED_LANGUAGES
from citybrain.core.i18n import translations
from helpers import csrf_from, demo_password, login

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "src" / "citybrain" / "locale"
# %(name)s and friends, and bare %s / %d; "%%" is a literal percent sign, not a placeholder.
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[#0 +-]*\d*(?:\.\d+)?([sdifr%])")


@cache
def _extractor():  # noqa: ANN202 - the scripts/extract_messages.py module
    spec = importlib.util.spec_from_file_location(
        "extract_messages", ROOT / "scripts" / "extract_messages.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def extracted_ids() -> frozenset[str]:
    return frozenset(m.id for m in _extractor().extract_template() if m.id)


def catalog(lang: str | None) -> Catalog:
    path = (
        LOCALE / "messages.pot" if lang is None else LOCALE / lang / "LC_MESSAGES" / "messages.po"
    )
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, abort_invalid=True)


def placeholders(text: str) -> Counter[str]:
    return Counter(f"{name}:{conv}" for name, conv in PLACEHOLDER.findall(text) if conv != "%")


def test_extraction_sees_templates_python_and_label_tables():
    ids = extracted_ids()
    assert "Log in" in ids  # template _("...")
    assert "The form expired; please try again." in ids  # Python _("...")
    assert "Days must be a whole number." in ids  # gettext_for(request)("...")
    # render.ROLE_LABELS, KIND_LABELS and NAV, translated in templates through variables
    assert {"Grid worker", "Township office", "District map"} <= ids


def test_every_message_in_the_sources_has_a_chinese_translation():
    zh = catalog("zh_CN")
    missing = sorted(
        i for i in extracted_ids() if not (zh.get(i) and zh.get(i).string and not zh.get(i).fuzzy)
    )
    assert not missing, (
        f"untranslated for zh_CN: {missing}; run `python scripts/extract_messages.py` "
        "and translate them in src/citybrain/locale/zh_CN/LC_MESSAGES/messages.po"
    )


@pytest.mark.parametrize("lang", [None, *SUPPORTED_LANGUAGES])
def test_catalogs_hold_every_extracted_message(lang):
    ids = {m.id for m in catalog(lang) if m.id}
    stale = sorted(extracted_ids() - ids)
    assert not stale, (
        f"catalog {lang or 'messages.pot'} lacks {stale}; run `python scripts/extract_messages.py`"
    )


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_translations_keep_the_placeholders_of_their_msgid(lang):
    wrong = [
        (m.id, m.string)
        for m in catalog(lang)
        if m.id and m.string and placeholders(m.id) != placeholders(m.string)
    ]
    assert not wrong


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_catalogs_parse_and_compile(lang):
    cat = catalog(lang)
    assert dict(cat.mime_headers)["Language"] == lang
    assert not list(cat.check())  # babel's own checks, e.g. python-format consistency
    translations.cache_clear()
    assert translations(lang).gettext("Log in") == {"zh_CN": "登录", "en": "Log in"}[lang]


def test_english_catalog_falls_back_to_the_english_msgids():
    assert all(not m.string for m in catalog("en") if m.id)


def test_login_page_is_chinese_by_default_and_english_after_switching(client):
    page = client.get("/login")
    assert 'lang="zh-CN"' in page.text
    assert "<h1>登录</h1>" in page.text

    switched = client.post(
        "/lang", data={"lang": "en", "next": "/login", "csrf_token": csrf_from(page.text)}
    )
    assert switched.status_code == 200 and switched.url.path == "/login"
    assert 'lang="en"' in switched.text
    assert "<h1>Log in</h1>" in switched.text and "登录" not in switched.text


def test_switching_language_needs_the_csrf_token(client):
    client.get("/login")
    refused = client.post("/lang", data={"lang": "en", "next": "/login"}, follow_redirects=False)
    assert refused.status_code == 403
    assert 'lang="zh-CN"' in client.get("/login").text


def test_navigation_and_role_labels_are_translated(client):
    login(client, "admin", demo_password("admin"))
    home = client.get("/").text
    for chinese in (
        "总览",
        "区域一张图",
        "部门管理",
        "用户管理",
        "审计日志",
        "API 令牌",
        "管理员",
        "退出",
    ):
        assert chinese in home
