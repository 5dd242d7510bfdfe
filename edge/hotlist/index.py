"""Constant-time lookup structures over integer keys, and the keys of the misread-tolerant match.

`BucketIndex` maps 64-bit keys to entry numbers (several entries may share a key). It is a hash
table laid out as one sorted array: each key is hashed, the top bits of the hash choose a bucket,
and a word holding the rest of the hash with the entry number is stored in bucket order. A lookup
hashes the key, reads the bucket's bounds and scans its few words: the same handful of steps for
ten thousand entries or a hundred million. Built with numpy sorts, no Python loop per entry.

Misread tolerance works on *confusion classes*: characters a reader confuses (O, 0, D and Q...)
share one class. A read whose class string equals an entry's, or differs by one missing, extra
or wrong character, is a candidate. The deletion-neighbourhood trick finds those in constant
time: an entry is indexed under its class string and each string with one character deleted;
a read looks up the same variants of itself. Candidates are then verified exactly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

import numpy as np

CONFUSION_GROUPS = ("0ODQ", "1IL", "2Z", "4A", "5S", "6G", "7T", "8B")
"""Characters a plate reader confuses; each group is one class for misread-tolerant matching."""

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
"""2**64 / golden ratio, odd: multiplying by it permutes 64-bit keys."""
_BUCKET_CHUNK = 1 << 22
_BLOCK = 1 << 20


def _class_table() -> dict[str, int]:
    grouped = "".join(CONFUSION_GROUPS)
    groups = [*CONFUSION_GROUPS, *(char for char in ALPHABET if char not in grouped)]
    return {char: number for number, group in enumerate(groups, 1) for char in group}


CLASS_OF = _class_table()
"""Character -> class number 1..N (characters in one confusion group share a number)."""
CLASS_BASE = max(CLASS_OF.values()) + 1
WHOLE = 15
"""Variant position of a whole class string; 0..14 is the position of the deleted character."""
_DIGIT_CLASS = np.array([CLASS_OF[char] for char in ALPHABET], np.int64)
"""Class number of each base-36 digit value."""
CLASS_TRANSLATION = str.maketrans({char: chr(number) for char, number in CLASS_OF.items()})
"""str.translate table: a VRM -> its class string, one character (chr(class number)) per char."""


def hash64(key: int) -> int:
    """Fibonacci hashing: one multiply whose top bits spread keys evenly (as `hash64_array`)."""
    return (key * _GOLDEN) & _MASK64


def hash64_array(keys: np.ndarray) -> np.ndarray:
    return keys.astype(np.uint64) * np.uint64(_GOLDEN)


def entry_bits(entry_count: int) -> int:
    """Bits that hold an entry number below `entry_count`."""
    return max(1, (entry_count - 1).bit_length())


def class_variants(vrm: str, with_deletions: bool) -> list[tuple[int, int]]:
    """(key, position) of the class string of `vrm` (position WHOLE) and, optionally, of each
    string with the character at `position` deleted."""
    classes = [ord(c) for c in vrm.translate(CLASS_TRANSLATION)]
    full = 0
    for number in classes:
        full = full * CLASS_BASE + number
    variants = [(full, WHOLE)]
    if with_deletions:
        prefix = 0
        for i, number in enumerate(classes):
            scale = CLASS_BASE ** (len(classes) - 1 - i)
            variants.append((prefix * scale + full % scale, i))
            prefix = prefix * CLASS_BASE + number
    return variants


def may_be_one_edit(position: int, other: int) -> bool:
    """Whether variants at these positions meeting means at most one edit between the strings:
    a whole string against any variant, or the same character deleted from both (otherwise,
    e.g. AB and BA meeting at B, the strings are further apart)."""
    return position == WHOLE or other == WHOLE or position == other


def exact_arrays(codes: np.ndarray) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """For `BucketIndex`: each entry under its exact VRM code, in blocks."""
    blocks = (
        (np.arange(block, min(block + _BLOCK, len(codes))), codes[block : block + _BLOCK])
        for block in range(0, len(codes), _BLOCK)
    )
    return len(codes), blocks


def class_variant_arrays(
    codes: np.ndarray,
) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]], int]:
    """For `BucketIndex`, from entries' exact VRM codes: the number of keys, the (values, keys)
    arrays of `class_variants`, and the bound on values. A value is the entry number with the
    variant position above it; the classes come from the base-36 digits of the codes (no
    per-entry strings), in blocks of entries so that temporaries stay small.
    """
    lengths = np.zeros(len(codes), np.int8)
    for block in range(0, len(codes), _BLOCK):
        remaining = codes[block : block + _BLOCK].copy()
        while (more := remaining > 1).any():
            lengths[block : block + _BLOCK] += more
            remaining //= np.where(more, 36, 1)
    bits = entry_bits(len(codes))

    def variants() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for block in range(0, len(codes), _BLOCK):
            block_codes, block_lengths = (
                codes[block : block + _BLOCK],
                lengths[block : block + _BLOCK],
            )
            for position, entries, keys in _block_variants(block_codes, block_lengths, block):
                yield entries | (position << bits), keys

    return len(codes) + int(lengths.sum(dtype=np.int64)), variants(), (WHOLE + 1) << bits


def _block_variants(
    codes: np.ndarray, lengths: np.ndarray, first_entry: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    lengths = lengths.astype(np.int64)
    longest = int(lengths.max(initial=0))
    classes = np.zeros((len(codes), longest), np.int16)
    """classes[e, i]: class of character i (from the left) of entry e's VRM; 0 past its end."""
    remaining = codes.copy()
    for from_end in range(longest):
        column = lengths - 1 - from_end
        rows = np.flatnonzero(column >= 0)
        classes[rows, column[rows]] = _DIGIT_CLASS[remaining[rows] % 36]
        remaining //= 36
    full = np.zeros(len(codes), np.int64)
    for i in range(longest):
        full = np.where(i < lengths, full * CLASS_BASE + classes[:, i], full)
    entries = np.arange(first_entry, first_entry + len(codes), dtype=np.int64)
    yield WHOLE, entries, full
    powers = CLASS_BASE ** np.arange(longest + 1, dtype=np.int64)
    prefix = np.zeros(len(codes), np.int64)
    for i in range(longest):
        rows = np.flatnonzero(i < lengths)
        scale = powers[lengths[rows] - 1 - i]
        yield i, entries[rows], prefix[rows] * scale + full[rows] % scale
        prefix = prefix * CLASS_BASE + classes[:, i]


class BucketIndex:
    """Key -> values (entry numbers) in constant time (see the module docstring)."""

    def __init__(
        self, total: int, parts: Iterable[tuple[np.ndarray, np.ndarray]], value_limit: int
    ):
        """`parts`: (values, keys) arrays, `total` keys in all, values below `value_limit`."""
        self._entry_bits = entry_bits(value_limit)
        self._entry_mask = (1 << self._entry_bits) - 1
        self._bucket_bits = max(1, total.bit_length() - 3)
        self._shift = 64 - self._bucket_bits
        words = np.empty(total, np.uint64)
        high = np.uint64(_MASK64 ^ self._entry_mask)
        at = 0
        for rows, keys in parts:
            words[at : at + len(rows)] = (hash64_array(keys) & high) | rows.astype(np.uint64)
            at += len(rows)
        words.sort()
        # starts[b] = number of words in buckets before b: count per bucket, then running sum.
        # Words are sorted, so each block of them covers one run of consecutive buckets.
        starts = np.zeros((1 << self._bucket_bits) + 1, np.uint32 if total < 1 << 32 else np.int64)
        for block in range(0, total, _BUCKET_CHUNK):
            buckets = (words[block : block + _BUCKET_CHUNK] >> np.uint64(self._shift)).astype(
                np.intp
            )
            counts = np.bincount(buckets - buckets[0])
            starts[buckets[0] + 1 : buckets[0] + 1 + len(counts)] += counts.astype(starts.dtype)
        np.cumsum(starts, out=starts)
        self._words_array = words
        self._starts_array = starts
        self._words = memoryview(words)
        self._starts = memoryview(starts)

    @property
    def nbytes(self) -> int:
        return self._words_array.nbytes + self._starts_array.nbytes

    def lookup(self, key: int) -> list[int]:
        """Values stored under `key`, plus (rarely) some whose key hashes alike."""
        hashed = (key * _GOLDEN) & _MASK64
        bucket = hashed >> self._shift
        words, bits = self._words, self._entry_bits
        wanted = hashed >> bits
        end = self._starts[bucket + 1]
        at = bisect_left(words, wanted << bits, self._starts[bucket], end)
        found = []
        while at < end and words[at] >> bits == wanted:
            found.append(words[at] & self._entry_mask)
            at += 1
        return found
