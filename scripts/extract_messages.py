"""Extract the UI's translatable strings and bring the gettext catalogs up to date.

    python scripts/extract_messages.py           write locale/messages.pot, update every .po
    python scripts/extract_messages.py --check   change nothing; exit 1 when a catalog is stale
                                                 or a zh_CN message has no translation

Message ids are English. They come from three places:

* ``_("...")`` in Python and in the Jinja2 templates, found by babel with the mapping in
  ``babel.cfg``;
* ``gettext_for(request)("...")`` in Python, which babel's tokenizer cannot see;
* the English labels in ``citybrain.web.render`` (``NAV``, ``ROLE_LABELS``, ``KIND_LABELS``),
  which templates translate through variables (``_(item.label)``) that no extractor can follow.

New messages enter each ``.po`` untranslated (never fuzzy-guessed from a similar one); messages
gone from the sources are dropped. Files are rewritten only when more than their dates changed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_python
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "src" / "citybrain" / "locale"
POT_PATH = LOCALE_DIR / "messages.pot"
RENDER_PY = "src/citybrain/web/render.py"
_DATE_HEADERS = (b'"POT-Creation-Date:', b'"PO-Revision-Date:')


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


def _extract_python(
    fileobj: Any, keywords: Iterable[str], comment_tags: Iterable[str], options: dict[str, Any]
) -> Iterator[tuple[int, str, Any, list[str]]]:
    """babel's Python extractor, plus ``gettext_for(...)("literal")`` calls."""
    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    for node in ast.walk(ast.parse(fileobj.read())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Call)
            and isinstance(node.func.func, ast.Name)
            and node.func.func.id == "gettext_for"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, "gettext", node.args[0].value, []


def _ui_labels() -> list[tuple[str, str]]:
    """(msgid, where) for the label tables; building the page router imports every domain,
    so NAV entries appended by domain modules are included."""
    sys.path.insert(0, str(ROOT / "src"))
    from citybrain.core.pages import build_page_router
    from citybrain.web import render

    build_page_router()
    labels = [(item.label, "NAV") for item in render.NAV]
    labels += [(label, "ROLE_LABELS") for label in render.ROLE_LABELS.values()]
    labels += [(label, "KIND_LABELS") for label in render.KIND_LABELS.values()]
    return labels


def _version() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from citybrain import __version__

    return __version__


def extract_template() -> Catalog:
    """The message template (``messages.pot``) as extracted from the current sources."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, "babel.cfg")
    method_map = [(pattern, _extract_python if method == "python" else method)
                  for pattern, method in method_map]
    catalog = Catalog(project="citybrain", version=_version(), charset="utf-8", fuzzy=False,
                      copyright_holder="the citybrain authors",
                      header_comment="# Translations template for citybrain.\n"
                                     "# This file is distributed under the same license as citybrain.\n#")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map,
        directory_filter=lambda d: not Path(d).name.startswith(".") and Path(d).name != "node_modules",
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for msgid, table in _ui_labels():
        catalog.add(msgid, None, [(RENDER_PY, 0)], auto_comments=[f"UI label: render.{table}"])
    return catalog


def _serialize(catalog: Catalog) -> bytes:
    buf = BytesIO()
    write_po(buf, catalog, width=100, sort_by_file=True, ignore_obsolete=True, include_lineno=False)
    return buf.getvalue()


def _without_dates(data: bytes) -> list[bytes]:
    return [line for line in data.splitlines() if not line.startswith(_DATE_HEADERS)]


def _needs_write(path: Path, data: bytes) -> bool:
    return not path.is_file() or _without_dates(path.read_bytes()) != _without_dates(data)


def updated_catalog(template: Catalog, lang: str) -> Catalog:
    path = po_path(lang)
    if path.is_file():
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
    else:
        catalog = Catalog(locale=lang, project="citybrain", charset="utf-8", fuzzy=False,
                          copyright_holder="the citybrain authors",
                          last_translator="citybrain authors", language_team=lang)
    catalog.update(template, no_fuzzy_matching=True)
    catalog.version = template.version
    return catalog


def supported_languages() -> tuple[str, ...]:
    sys.path.insert(0, str(ROOT / "src"))
    from citybrain.config import SUPPORTED_LANGUAGES

    return SUPPORTED_LANGUAGES


def run(check: bool) -> int:
    template = extract_template()
    outputs = [(POT_PATH, _serialize(template))]
    outputs += [(po_path(lang), _serialize(updated_catalog(template, lang)))
                for lang in supported_languages()]
    stale = [path for path, data in outputs if _needs_write(path, data)]
    problems = [f"{path.relative_to(ROOT)} is out of date" for path in stale] if check else []
    for path, data in outputs:
        if not check and path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT)}")
    zh = updated_catalog(template, "zh_CN")
    problems += [f"zh_CN: no translation for {m.id!r}" for m in zh if m.id and (not m.string or m.fuzzy)]
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{len(template)} messages; {len(problems)} problem(s)")
    return 1 if check and problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail when a catalog is stale or zh_CN is incomplete")
    return run(parser.parse_args(argv).check)


if __name__ == "__main__":
    sys.exit(main())
