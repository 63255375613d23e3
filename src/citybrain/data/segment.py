"""Chinese word segmentation for catalog search (jieba's dictionary, through the Rust port rjieba).

Entries are indexed as space-separated words (search mode: long words and the shorter words
inside them), queries are cut the same way, so "人口信息" finds "人口基础信息库".
"""

from __future__ import annotations

import re

import rjieba

_WORD = re.compile(r"\w", re.UNICODE)


def words(text: str) -> list[str]:
    """The distinct search words of a text, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for w in rjieba.cut_for_search(text or ""):
        w = w.strip().lower()
        if w and _WORD.search(w):
            seen.setdefault(w, None)
    return list(seen)


def index_text(text: str) -> str:
    return " " + " ".join(words(text)) + " "
