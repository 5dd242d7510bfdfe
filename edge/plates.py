"""UK number-plate syntax: normalisation, format recognition, format-aware correction."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHABET = DIGITS + LETTERS
"""The reader's character classes, in the order of its per-position probability columns."""


def normalise(text: str) -> str:
    """Upper case with everything but A-Z and 0-9 removed: 'ab12 cde' -> 'AB12CDE'."""
    return _NOT_ALNUM.sub("", text.upper())


def _without(excluded: str) -> frozenset[str]:
    return frozenset(LETTERS) - frozenset(excluded)


_DIGIT = frozenset(DIGITS)
_LETTER = frozenset(LETTERS)
# Current (2001-): memory tag (region letter never I, Q or Z), age identifier, random letters
# (never I or Q).
_CURRENT_REGION = _without("IQZ")
_CURRENT_LETTER = _without("IQ")
# Prefix (1983-2001) and suffix (1963-1983): the year letter is never I, O, U or Z; Q is kept
# for Q plates.
_YEAR_LETTER = _without("IOUZ")
_SERIES_LETTER = _without("IQ")
_NI_CODE_LETTER = frozenset("IZ")


@dataclass(frozen=True, slots=True)
class _Group:
    allowed: frozenset[str]
    min_len: int
    max_len: int


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    groups: tuple[_Group, ...]
    split_after_group: int
    """How many groups are printed before the space on the plate."""


def _g(allowed: frozenset[str], min_len: int, max_len: int | None = None) -> _Group:
    return _Group(allowed, min_len, min_len if max_len is None else max_len)


FORMATS: tuple[_Format, ...] = (
    _Format("current", (_g(_CURRENT_REGION, 1), _g(_CURRENT_LETTER, 1), _g(_DIGIT, 2),
                        _g(_CURRENT_LETTER, 3)), 3),
    _Format("prefix", (_g(_YEAR_LETTER, 1), _g(_DIGIT, 1, 3), _g(_SERIES_LETTER, 3)), 2),
    _Format("suffix", (_g(_SERIES_LETTER, 3), _g(_DIGIT, 1, 3), _g(_YEAR_LETTER, 1)), 1),
    # Northern Ireland: an optional serial letter, a two-letter area code containing I or Z,
    # then up to four digits. The code is checked separately (see _fits_ni_code).
    _Format("northern_ireland", (_g(_LETTER, 2, 3), _g(_DIGIT, 1, 4)), 1),
    _Format("dateless", (_g(_LETTER, 1, 3), _g(_DIGIT, 1, 4)), 1),
    _Format("dateless", (_g(_DIGIT, 1, 4), _g(_LETTER, 1, 3)), 1),
)
"""Most specific first: a text fitting several (e.g. 'ABZ1234') takes the first name."""

FORMAT_NAMES = ("current", "prefix", "suffix", "dateless", "northern_ireland")


@dataclass(frozen=True, slots=True)
class _Template:
    format: _Format
    slots: tuple[frozenset[str], ...]
    group_lengths: tuple[int, ...]


def _expand(fmt: _Format) -> list[_Template]:
    templates: list[_Template] = [_Template(fmt, (), ())]
    for group in fmt.groups:
        templates = [
            _Template(fmt, t.slots + (group.allowed,) * n, t.group_lengths + (n,))
            for t in templates
            for n in range(group.min_len, group.max_len + 1)
        ]
    return templates


_TEMPLATES_BY_LENGTH: dict[int, list[_Template]] = {}
for _fmt in FORMATS:
    for _template in _expand(_fmt):
        _TEMPLATES_BY_LENGTH.setdefault(len(_template.slots), []).append(_template)


def _fits_ni_code(template: _Template, text: str) -> bool:
    if template.format.name != "northern_ireland":
        return True
    letters = template.group_lengths[0]
    code = text[letters - 2 : letters]
    return any(c in _NI_CODE_LETTER for c in code)


def _fits(template: _Template, text: str) -> bool:
    return all(c in allowed for c, allowed in zip(text, template.slots, strict=True)) and (
        _fits_ni_code(template, text)
    )


def _matching_template(text: str) -> _Template | None:
    for template in _TEMPLATES_BY_LENGTH.get(len(text), []):
        if _fits(template, text):
            return template
    return None


def uk_format(text: str) -> str | None:
    """Name of the UK format `text` (normalised first) fits, or None: 'AB12CDE' -> 'current'."""
    template = _matching_template(normalise(text))
    return template.format.name if template else None


def display_text(vrm: str) -> str:
    """The registration as printed on a plate: 'AB12CDE' -> 'AB12 CDE', 'ABC123D' -> 'ABC 123D'.

    Texts that fit no UK format are returned normalised, without a space.
    """
    text = normalise(vrm)
    template = _matching_template(text)
    if template is None:
        return text
    split = sum(template.group_lengths[: template.format.split_after_group])
    return f"{text[:split]} {text[split:]}"
