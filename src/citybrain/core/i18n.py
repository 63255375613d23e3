"""Translations from the gettext catalogs under ``citybrain/locale``.

Message ids are English; ``zh_CN`` (the default UI language) and ``en`` each have a catalog.
The ``.po`` files are compiled in memory at start, so no build step or binary file is needed.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from importlib import resources
from io import BytesIO

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from citybrain.config import SUPPORTED_LANGUAGES

LANG_COOKIE = "cb_lang"


@lru_cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang not in SUPPORTED_LANGUAGES:
        return gettext.NullTranslations()
    po = resources.files("citybrain").joinpath("locale", lang, "LC_MESSAGES", "messages.po")
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def pick_language(cookie_value: str | None, default: str) -> str:
    return cookie_value if cookie_value in SUPPORTED_LANGUAGES else default


def html_lang(lang: str) -> str:
    return lang.replace("_", "-")
