"""UK number-plate syntax: normalisation, format recognition, format-aware correction."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

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
# Current (2001-): memory tag, age identifier, random letters (never I or Q). The tag's region
# letter is one DVLA uses (X for export; never I, J, Q, T, U or Z), its local letter never I,
# Q or Z.
_CURRENT_REGION = _without("IJQTUZ")
_CURRENT_LOCAL = _without("IQZ")
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
    first: frozenset[str] | None = None
    """What the group's first character may be, where that is narrower than `allowed`."""


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    groups: tuple[_Group, ...]
    split_after_group: int
    """How many groups are printed before the space on the plate."""


def _g(allowed: frozenset[str], min_len: int, max_len: int | None = None) -> _Group:
    return _Group(allowed, min_len, min_len if max_len is None else max_len)


def _number(max_len: int) -> _Group:
    """A serial number, 1 up to `max_len` digits: never 0 and never a leading 0 (DVLA issues
    1-999 on prefix and suffix plates, 1-9999 on dateless and Northern Ireland ones)."""
    return _Group(_DIGIT, 1, max_len, first=_DIGIT - {"0"})


FORMATS: tuple[_Format, ...] = (
    _Format(
        "current",
        (_g(_CURRENT_REGION, 1), _g(_CURRENT_LOCAL, 1), _g(_DIGIT, 2), _g(_CURRENT_LETTER, 3)),
        3,
    ),
    _Format("prefix", (_g(_YEAR_LETTER, 1), _number(3), _g(_SERIES_LETTER, 3)), 2),
    _Format("suffix", (_g(_SERIES_LETTER, 3), _number(3), _g(_YEAR_LETTER, 1)), 1),
    # Northern Ireland: an optional serial letter, a two-letter area code containing I or Z,
    # then up to four digits. The code is checked separately (see _fits_ni_code).
    _Format("northern_ireland", (_g(_LETTER, 2, 3), _number(4)), 1),
    _Format("dateless", (_g(_LETTER, 1, 3), _number(4)), 1),
    _Format("dateless", (_number(4), _g(_LETTER, 1, 3)), 1),
)
"""Most specific first: a text fitting several (e.g. 'ABZ1234') takes the first name."""

FORMAT_NAMES = ("current", "prefix", "suffix", "northern_ireland", "dateless")


@dataclass(frozen=True, slots=True)
class _Template:
    format: _Format
    slots: tuple[frozenset[str], ...]
    group_lengths: tuple[int, ...]


def _group_slots(group: _Group, length: int) -> tuple[frozenset[str], ...]:
    if group.first is None:
        return (group.allowed,) * length
    return (group.first,) + (group.allowed,) * (length - 1)


def _expand(fmt: _Format) -> list[_Template]:
    templates: list[_Template] = [_Template(fmt, (), ())]
    for group in fmt.groups:
        templates = [
            _Template(fmt, t.slots + _group_slots(group, n), t.group_lengths + (n,))
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


def holds_digit(text: str) -> bool:
    """Whether a read has a digit, as every UK format does; the words around a plate (a US
    state name above it, a dealer's name, a road marking) mostly have none."""
    return any(c.isdigit() for c in text)


_DIGIT_LOOK_ALIKES = {"O": "0", "Q": "0", "I": "1"}


def digits_together(text: str) -> str:
    """`text` with O or Q read as 0, and I as 1, where the characters beside them are digits
    (one digit beside it at either end): plates group their digits, foreign ones as UK ones do.
    Of the 272 labelled EU and US plates in the shared photos, 92 have a 0 or 1 so placed and
    none an O, Q or I."""
    chars = list(text)
    for i, char in enumerate(text):
        neighbours = text[max(0, i - 1) : i] + text[i + 1 : i + 2]
        if char in _DIGIT_LOOK_ALIKES and neighbours and neighbours.isdigit():
            chars[i] = _DIGIT_LOOK_ALIKES[char]
    return "".join(chars)


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


_LOOK_ALIKES: dict[str, dict[str, float]] = {}
"""Read character -> characters it is often misread for -> substitution cost."""
for _pairs, _cost in (
    (("O0", "I1", "S5", "B8", "Z2", "G6", "QO"), 1.0),
    (("D0",), 1.2),
    (("Q0", "A4", "T7", "T1", "L1", "J1", "U0", "C0", "B3", "E3", "IL", "IT", "IJ"), 1.5),
):
    for _a, _b in _pairs:
        _LOOK_ALIKES.setdefault(_a, {})[_b] = _cost
        _LOOK_ALIKES.setdefault(_b, {})[_a] = _cost

MAX_SUBSTITUTIONS = 2
"""More than this and the read is more likely a foreign or unusual plate than a misread."""
_MAX_TABLE_COST = 2.0
"""Without the reader's probabilities: two close look-alikes (SMOI -> SM01) or one weaker one."""
_MAX_PROBABILITY_COST = math.log(200)
"""A text the reader found 200 times less likely than the one it read is not a misread."""
_MIN_CANDIDATE_PROBABILITY = 0.02
_PROBABILITY_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class Correction:
    text: str
    plate_format: str | None
    cost: float
    """0 for the text as read; grows with each substitution and how unlikely it is."""
    substitutions: int


def _substitution(
    read: str, allowed: frozenset[str], probs: np.ndarray | None
) -> tuple[str, float] | None:
    """The cheapest allowed replacement for the character `read`, with its cost, or None."""
    look_alikes = _LOOK_ALIKES.get(read, {})
    if probs is None:
        options = [(cost, c) for c, cost in look_alikes.items() if c in allowed]
    else:
        likely = {ALPHABET[k] for k in np.flatnonzero(probs >= _MIN_CANDIDATE_PROBABILITY)}
        p_read = max(float(probs[ALPHABET.index(read)]), _PROBABILITY_FLOOR)
        options = []
        for c in (likely | look_alikes.keys()) & allowed:
            p = max(float(probs[ALPHABET.index(c)]), _PROBABILITY_FLOOR)
            # Even an even-odds swap costs a little, so that fewer substitutions win ties.
            options.append((max(0.05, math.log(p_read / p)), c))
    options = [option for option in options if option[0] <= _MAX_PROBABILITY_COST]
    if not options:
        return None
    cost, char = min(options)
    return char, cost


def corrections(text: str, char_probs: np.ndarray | None = None) -> list[Correction]:
    """Every UK-format reading of `text` within MAX_SUBSTITUTIONS, cheapest first.

    `char_probs` (len(text) x len(ALPHABET), the reader's per-position class probabilities)
    sets the cost of a substitution; without it a table of look-alike characters does. When the
    text fits no format even after correction, the only entry is the text as read, format None.
    """
    text = normalise(text)
    if char_probs is not None and np.shape(char_probs) != (len(text), len(ALPHABET)):
        raise ValueError(
            f"char_probs has shape {np.shape(char_probs)}; expected ({len(text)}, {len(ALPHABET)})"
        )
    max_cost = _MAX_TABLE_COST if char_probs is None else _MAX_PROBABILITY_COST
    best_by_text: dict[str, Correction] = {}
    for template in _TEMPLATES_BY_LENGTH.get(len(text), []):
        chars, cost, substitutions = list(text), 0.0, 0
        for i, (char, allowed) in enumerate(zip(text, template.slots, strict=True)):
            if char in allowed:
                continue
            swap = _substitution(char, allowed, None if char_probs is None else char_probs[i])
            substitutions += 1
            if swap is None or substitutions > MAX_SUBSTITUTIONS or cost + swap[1] > max_cost:
                break
            chars[i] = swap[0]
            cost += swap[1]
        else:
            corrected = "".join(chars)
            if not _fits_ni_code(template, corrected):
                continue
            known = best_by_text.get(corrected)
            if known is None or cost < known.cost:
                best_by_text[corrected] = Correction(
                    corrected, uk_format(corrected), cost, substitutions
                )
    if not best_by_text:
        return [Correction(text, None, 0.0, 0)]
    rank = {name: i for i, name in enumerate(FORMAT_NAMES)}
    return sorted(
        best_by_text.values(), key=lambda c: (c.cost, c.substitutions, rank[c.plate_format])
    )


def correct(text: str, char_probs: np.ndarray | None = None) -> tuple[str, str | None]:
    """The read corrected to the UK format it fits most cheaply, and that format's name.

    Look-alike characters are swapped where the format fixes a letter or a digit (O/0, I/1,
    S/5, B/8, ...). A read that fits no format within MAX_SUBSTITUTIONS is returned as read
    with format None, never forced.
    """
    best = corrections(text, char_probs)[0]
    return best.text, best.plate_format


def format_slots(text: str) -> tuple[frozenset[str], ...] | None:
    """Per position, the characters the UK format that `text` fits allows there; None if none."""
    template = _matching_template(normalise(text))
    return template.slots if template else None
