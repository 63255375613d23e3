"""Masking (脱敏) of personal fields, by the kind an information item names in ``personal``.

The rules are data: the shipped ``data/masking.toml`` or the file named by the
``data_masking_file`` setting. Its patterns are this platform's configuration, not a national
rule (GB/T 35273 asks for de-identified display without fixing a pattern). A kind with no rule
falls back to ``default``, and a value that cannot be masked by its rule is masked completely:
masking fails closed, never open.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from citybrain.core.errors import Invalid

METHODS = ("keep", "surname", "cut", "regex", "full")
Masker = Callable[[str], str]


@dataclass(frozen=True)
class MaskingRules:
    """One masking function per personal kind, and the fallback for kinds not named."""

    maskers: Mapping[str, Masker]
    default: Masker
    mask_char: str = "*"
    source: str = "shipped"
    kinds: tuple[str, ...] = field(default=())

    def mask(self, kind: str, value: Any) -> Any:
        if value is None or value == "":
            return value
        return self.maskers.get(kind, self.default)(str(value))


def _keep(first: int, last: int, char: str) -> Masker:
    def mask(text: str) -> str:
        if len(text) <= first + last:
            return char * len(text)
        return text[:first] + char * (len(text) - first - last) + text[len(text) - last:]

    return mask


def _surname(compound: list[str], char: str) -> Masker:
    def mask(text: str) -> str:
        text = text.strip()
        n = next((len(s) for s in compound if text.startswith(s) and len(text) > len(s)), 1)
        return text[:n] + char * max(len(text) - n, 1) if text else text

    return mask


def _cut(pattern: re.Pattern[str], keep_first: int, char: str) -> Masker:
    fallback = _keep(keep_first, 0, char)

    def mask(text: str) -> str:
        match = pattern.match(text)
        if match is None or match.end() >= len(text):
            return fallback(text)
        return text[:match.end()] + char * (len(text) - match.end())

    return mask


def _regex(pattern: re.Pattern[str], replace: str) -> Masker:
    return lambda text: pattern.sub(replace, text)


def _full(char: str) -> Masker:
    return lambda text: char * len(text)


def _compile(kind: str, rule: Mapping[str, Any], char: str, where: str) -> Masker:
    method = rule.get("method")
    if method not in METHODS:
        raise Invalid(f"{where}: kind {kind!r} has method {method!r}; use one of {', '.join(METHODS)}")
    try:
        if method == "keep":
            first, last = int(rule.get("keep_first", 0)), int(rule.get("keep_last", 0))
            if first < 0 or last < 0:
                raise ValueError("keep_first and keep_last must be 0 or more")
            return _keep(first, last, char)
        if method == "surname":
            return _surname(sorted(map(str, rule.get("compound_surnames", [])), key=len, reverse=True), char)
        if method == "cut":
            return _cut(re.compile(str(rule["pattern"])), int(rule.get("keep_first", 0)), char)
        if method == "regex":
            return _regex(re.compile(str(rule["pattern"])), str(rule.get("replace", char * 4)))
        return _full(char)
    except (KeyError, ValueError, TypeError, re.error) as exc:
        raise Invalid(f"{where}: kind {kind!r}: {exc}") from exc


def parse_rules(text: str, *, source: str) -> MaskingRules:
    """Masking rules from TOML text; any mistake is an ``Invalid`` naming the file and the kind."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"masking rules {source}: {exc}") from exc
    char = str(raw.get("mask_char", "*"))
    if len(char) != 1:
        raise Invalid(f"masking rules {source}: mask_char must be one character")
    kinds = raw.get("kinds", {})
    if not isinstance(kinds, dict) or not all(isinstance(v, dict) for v in kinds.values()):
        raise Invalid(f"masking rules {source}: [kinds.<name>] tables expected")
    maskers = {kind: _compile(kind, rule, char, f"masking rules {source}") for kind, rule in kinds.items()}
    default = maskers.pop("default", _full(char))
    return MaskingRules(maskers=maskers, default=default, mask_char=char, source=source,
                        kinds=tuple(sorted(maskers)))


@lru_cache(maxsize=8)
def load_rules(path: str | None = None) -> MaskingRules:
    """The shipped rules, or those of ``path`` (the ``data_masking_file`` setting); cached per path."""
    if path is None:
        text = resources.files("citybrain.data").joinpath("data/masking.toml").read_text(encoding="utf-8")
        return parse_rules(text, source="data/masking.toml (shipped)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise Invalid(f"masking rules {path}: cannot read the file ({exc.strerror})") from exc
    return parse_rules(text, source=str(path))


def rules_for(settings: Any) -> MaskingRules:
    path = getattr(settings, "data_masking_file", None)
    return load_rules(str(path) if path else None)
