"""UK plate syntax: formats, display grouping, format-aware correction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.plates import (
    ALPHABET,
    MAX_SUBSTITUTIONS,
    correct,
    corrections,
    display_text,
    normalise,
    uk_format,
)

STYLE_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _random_vrm(seed: int, style: str | None) -> str:
    # Imported here: the renderer module needs the shared font only when rendering, but keep
    # these syntax tests independent of it at collection time.
    from benchmarks.synthetic.render import random_uk_vrm

    return random_uk_vrm(np.random.default_rng(seed), style)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AB12CDE", "current"),
        ("ab12 cde", "current"),
        ("BD51SMR", "current"),
        ("A123BCD", "prefix"),
        ("P7ABC", "prefix"),
        ("ABC123D", "suffix"),
        ("ABC1D", "suffix"),
        ("ABC123", "dateless"),
        ("1234AB", "dateless"),
        ("A1", "dateless"),
        ("ABZ1234", "northern_ireland"),
        ("XI42", "northern_ireland"),
        ("A012BCD", None),  # serial numbers never start with 0 (1-999, 1-9999)...
        ("ABC0", None),
        ("ABZ0123", None),
        ("0123AB", None),
        ("ABC10", "dateless"),  # ...though they hold zeros
        ("AB02CDE", "current"),  # the age identifier is not a serial number
        ("AB12CD", None),
        ("AI12CDE", None),  # current format never uses I
        ("AB12CDQ", None),  # nor Q
        ("TA12CDE", None),  # no region has the letter T (nor I, J, Q, U, Z)
        ("AZ12CDE", None),  # Z is never a local letter, only a random one
        ("XA12CDZ", "current"),  # X: export
        ("ABC12345", None),
        ("12345", None),
        ("", None),
    ],
)
def test_uk_format(text: str, expected: str | None) -> None:
    assert uk_format(text) == expected


@pytest.mark.parametrize(
    ("vrm", "shown"),
    [
        ("AB12CDE", "AB12 CDE"),
        ("A123BCD", "A123 BCD"),
        ("ABC123D", "ABC 123D"),
        ("ABC123", "ABC 123"),
        ("1234AB", "1234 AB"),
        ("ABZ1234", "ABZ 1234"),
        ("not a plate!", "NOTAPLATE"),
    ],
)
def test_display_text(vrm: str, shown: str) -> None:
    assert display_text(vrm) == shown


def test_normalise() -> None:
    assert normalise(" ab-12 cde\n") == "AB12CDE"


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        ("AB12CDE", ("AB12CDE", "current")),
        ("AB1ZCDE", ("AB12CDE", "current")),  # Z in a digit position
        ("ABI2CDE", ("AB12CDE", "current")),  # I never in current; digit position
        ("AB12CD0", ("AB12CDO", "current")),  # 0 in a letter position: O before D
        ("AB12CDQ", ("AB12CDO", "current")),  # Q only on Q plates
        ("SMOILMF", ("SM01LMF", "current")),  # both age-identifier digits read as letters
        ("ABC12ED", ("ABC123D", "suffix")),  # E and 3 look alike; a digit belongs there
        ("K179658", ("K179658", None)),  # a foreign plate is kept as read, not forced
        ("CCV020", ("CCV020", None)),  # a serial number never starts with 0: not dateless
        ("N0RTH", ("N0RTH", None)),  # nor is a word with an O read as 0 a prefix plate
        ("ZZZZZZZZ", ("ZZZZZZZZ", None)),
    ],
)
def test_correct_examples(read: str, expected: tuple[str, str | None]) -> None:
    assert correct(read) == expected


def test_reader_probabilities_choose_the_substitute() -> None:
    probs = np.full((7, len(ALPHABET)), 1e-4)
    for i, char in enumerate("AB12CD0"):
        probs[i, ALPHABET.index(char)] = 0.6
    probs[6, ALPHABET.index("D")] = 0.35  # the reader's runner-up at the last position
    assert correct("AB12CD0", probs) == ("AB12CDD", "current")


def test_confident_impossible_character_is_not_forced() -> None:
    probs = np.full((7, len(ALPHABET)), 1e-6)
    for i, char in enumerate("AB1KCDE"):
        probs[i, ALPHABET.index(char)] = 0.999
    assert correct("AB1KCDE", probs) == ("AB1KCDE", None)


def test_char_probs_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="char_probs has shape"):
        correct("AB12CDE", np.ones((6, len(ALPHABET))))


@settings(deadline=None)
@given(STYLE_SEEDS, st.sampled_from(["current", "prefix", "suffix", "northern_ireland"]))
def test_generated_plates_fit_their_format(seed: int, style: str) -> None:
    vrm = _random_vrm(seed, style)
    assert uk_format(vrm) == style
    assert correct(vrm) == (vrm, style)
    assert normalise(display_text(vrm)) == vrm


@settings(deadline=None)
@given(STYLE_SEEDS)
def test_any_generated_plate_is_valid_and_unchanged(seed: int) -> None:
    vrm = _random_vrm(seed, None)
    fmt = uk_format(vrm)
    assert fmt is not None
    assert correct(vrm) == (vrm, fmt)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET + " -ab", max_size=10))
def test_correction_is_small_consistent_and_idempotent(read: str) -> None:
    text = normalise(read)
    corrected, fmt = correct(read)
    assert len(corrected) == len(text)
    assert sum(a != b for a, b in zip(corrected, text, strict=True)) <= MAX_SUBSTITUTIONS
    if fmt is None:
        assert corrected == text
    else:
        assert uk_format(corrected) == fmt
        assert correct(corrected) == (corrected, fmt)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=9), st.integers(0, 2**32 - 1))
def test_corrections_are_ranked_and_all_fit(read: str, seed: int) -> None:
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(ALPHABET)), size=len(read))
    ranked = corrections(read, probs)
    assert [c.cost for c in ranked] == sorted(c.cost for c in ranked)
    assert all(c.plate_format is None or uk_format(c.text) == c.plate_format for c in ranked)
    assert ranked[0].text == correct(read, probs)[0]
