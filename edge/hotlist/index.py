"""Constant-time lookup structures over integer keys, and the keys of the misread-tolerant match.

Keys are hashed with one multiply (`HASH_MULTIPLIER`); the top bits of the hash choose a *bucket*. A
bucket table is one array of 64-bit words in bucket order, each holding the rest of the hash and
a value (an entry number), plus the start of every bucket. A lookup hashes the key, reads the
bucket's bounds and binary-searches its few words: the same handful of steps for ten thousand
entries or a hundred million. The exact index goes one step further: the hotlist's entries themselves are
stored in bucket order (`exact_order`), so a bucket is a run of entries.

Tables are built with numpy sorts, no Python loop per entry, on two cores: words whose hash has
its top bit clear fill the array from the front and the others from the back, so the two halves
can be sorted at the same time and together are in bucket order.

Misread tolerance works on *confusion classes*: characters a reader confuses (O, 0, D and Q...)
share one class. A read whose class string equals an entry's, or differs by one missing, extra
or wrong character, is a candidate. The deletion-neighbourhood trick finds those in constant
time: an entry is indexed under its class string and each string with one character deleted;
a read looks up the same variants of itself. Candidates are then verified exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

CONFUSION_GROUPS = ("0ODQ", "1IL", "2Z", "4A", "5S", "6G", "7T", "8B")
"""Characters a plate reader confuses; each group is one class for misread-tolerant matching."""

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_KEY_CHARS = 10
MASK64 = (1 << 64) - 1
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
"""2**64 / golden ratio, odd: multiplying by it permutes 64-bit keys (Fibonacci hashing). A key's
hash is (key * HASH_MULTIPLIER) & MASK64; its top bits choose the bucket."""
_TOP_BIT = np.uint64(1 << 63)
_ENTRY_BLOCK = 1 << 16
_COUNT_CHUNK = 1 << 20


def _class_table() -> dict[str, int]:
    grouped = "".join(CONFUSION_GROUPS)
    groups = [*CONFUSION_GROUPS, *(char for char in ALPHABET if char not in grouped)]
    return {char: number for number, group in enumerate(groups, 1) for char in group}


CLASS_OF = _class_table()
"""Character -> class number 1..N (characters in one confusion group share a number)."""
CLASS_BASE = max(CLASS_OF.values()) + 1
"""Class strings are numbers in this base (class numbers are never 0, so lengths differ too)."""
WHOLE = 15
"""Variant position of a whole class string; 0..14 is the position of the deleted character."""
CLASS_TRANSLATION = str.maketrans({char: chr(number) for char, number in CLASS_OF.items()})
"""str.translate table: a VRM -> its class string, one character (chr(class number)) per char."""
CLASS_DIGITS = str.maketrans(
    {char: np.base_repr(number, CLASS_BASE).lower() for char, number in CLASS_OF.items()}
)
"""str.translate table: a VRM -> its class string written in base CLASS_BASE, for int()."""
_DIGIT_CLASS = np.array([CLASS_OF[char] for char in ALPHABET], np.int64)
"""Class number of each base-36 digit value."""
_POWERS_OF_36 = 36 ** np.arange(MAX_KEY_CHARS + 1, dtype=np.int64)
_CLASS_POWERS = CLASS_BASE ** np.arange(MAX_KEY_CHARS + 1, dtype=np.int64)


def value_bits(limit: int) -> int:
    """Bits that hold a value below `limit`."""
    return max(1, (limit - 1).bit_length())


def class_keys(vrm: str, with_deletions: bool) -> list[int]:
    """Keys of the class string of `vrm` (`WHOLE`) and, optionally, of each string with one
    character deleted (key i + 1 for the character at position i, counted from the left)."""
    digits = vrm.translate(CLASS_DIGITS)
    keys = [int(digits, CLASS_BASE)]
    if with_deletions and len(digits) > 1:
        keys += [int(digits[:i] + digits[i + 1 :], CLASS_BASE) for i in range(len(digits))]
    return keys


def code_lengths(codes: np.ndarray) -> np.ndarray:
    """Characters in each exact VRM code (`ParsedFile.codes`: a 1, then one base-36 digit per character)."""
    return (np.searchsorted(_POWERS_OF_36, codes, side="right") - 1).astype(np.int8)


def class_variant_words(
    codes: np.ndarray, lengths: np.ndarray, first_entry: int, entry_bits: int, high: np.uint64
) -> np.ndarray:
    """Bucket-table words of the `class_keys` (with deletions) of entries from `first_entry`.

    A word is the high bits of the key's hash, then the variant position, then the entry number.
    Classes come from the base-36 digits of the codes; a deletion variant is the class string
    above the deleted character, shifted down one place, plus the part below it (no divisions
    beyond the digits).
    """
    lengths = lengths.astype(np.int64)
    longest = int(lengths.max(initial=0))
    shortest = int(lengths.min(initial=longest))
    entries = np.arange(first_entry, first_entry + len(codes), dtype=np.uint64)
    remaining = codes - np.take(_POWERS_OF_36, lengths)
    """The codes without their leading 1: digits past the start are 0."""
    below = np.zeros((longest + 1, len(codes)), np.int64)
    """below[k]: the class string's last k characters, as a number."""
    classes = np.empty((longest, len(codes)), np.int64)
    """classes[k]: class of the k-th character from the right (0 past the start)."""
    for k in range(longest):
        quotient = remaining // 36
        np.take(_DIGIT_CLASS, remaining - quotient * 36, out=classes[k])
        if k >= shortest:
            classes[k] *= k < lengths
        remaining = quotient
        np.add(below[k], classes[k] * _CLASS_POWERS[k], out=below[k + 1])
    whole = np.uint64(WHOLE) << np.uint64(entry_bits)
    parts = [(_hashes(below[longest]) & high) | whole | entries]
    last_position = (lengths - 1).astype(np.uint64) << np.uint64(entry_bits)
    above = np.zeros(len(codes), np.int64)
    for k in range(longest - 1, -1, -1):
        position = last_position - np.uint64(k << entry_bits)
        words = (_hashes(above * _CLASS_POWERS[k] + below[k]) & high) | position | entries
        parts.append(words if k < shortest else words[k < lengths])
        above = above * CLASS_BASE + classes[k]
    return np.concatenate(parts)


def _hashes(keys: np.ndarray) -> np.ndarray:
    """The hashes of non-negative int64 keys (see `HASH_MULTIPLIER`)."""
    return keys.view(np.uint64) * np.uint64(HASH_MULTIPLIER)


class BucketTable:
    """Values under hashed keys, bucket by bucket (see the module docstring)."""

    def __init__(self, total: int, value_limit: int, bucket_bits: int):
        """For `total` words with values below `value_limit`, in 2**bucket_bits buckets."""
        self.value_bits = value_bits(value_limit)
        self.value_mask = (1 << self.value_bits) - 1
        self.high = np.uint64(MASK64 ^ self.value_mask)
        self.shift = 64 - bucket_bits
        self.words = np.empty(total, np.uint64)
        self.starts = np.zeros((1 << bucket_bits) + 1, np.uint32 if total < 1 << 32 else np.int64)
        self._front, self._back = 0, total
        self._reserving = threading.Lock()

    def fill(
        self, executor: Executor, block_count: int, block_words: Callable[[int], np.ndarray]
    ) -> None:
        """Store the words `block_words(i)` of every block, sort them and count the buckets."""
        list(executor.map(lambda block: self._add(block_words(block)), range(block_count)))
        if self._front != self._back:
            raise ValueError(
                f"{len(self.words)} words expected, {self._back - self._front} missing"
            )
        halves = (self.words[: self._front], self.words[self._front :])
        # Within a half every word has the same top bit, so signed order is unsigned order, and
        # numpy sorts int64 faster than uint64.
        list(executor.map(np.ndarray.sort, (half.view(np.int64) for half in halves)))
        list(executor.map(self._count_buckets, halves))
        np.cumsum(self.starts, out=self.starts)

    def _add(self, words: np.ndarray) -> None:
        upper = words >= _TOP_BIT
        high_count = int(np.count_nonzero(upper))
        low_count = len(words) - high_count
        with self._reserving:
            front = self._front
            self._front += low_count
            self._back -= high_count
            back = self._back
        np.compress(~upper, words, out=self.words[front : front + low_count])
        np.compress(upper, words, out=self.words[back : back + high_count])

    def _count_buckets(self, words: np.ndarray) -> None:
        """Add each bucket's number of words to starts[bucket + 1] (words sorted)."""
        for at in range(0, len(words), _COUNT_CHUNK):
            buckets = (words[at : at + _COUNT_CHUNK] >> np.uint64(self.shift)).astype(np.intp)
            counts = np.bincount(buckets - buckets[0])
            self.starts[buckets[0] + 1 : buckets[0] + 1 + len(counts)] += counts.astype(
                self.starts.dtype
            )

    @property
    def nbytes(self) -> int:
        return self.words.nbytes + self.starts.nbytes


def exact_order(codes: np.ndarray, executor: Executor) -> tuple[np.ndarray, np.ndarray, int]:
    """Entries in bucket order of their exact codes: (order, bucket starts in that order, shift).

    `order[i]` is the entry that goes to place i; entries with the same code end up next to each
    other, in their original order. Buckets hold one or two entries each.
    """
    count = len(codes)
    table = BucketTable(count, count, max(1, count.bit_length() - 1))

    def block_words(block: int) -> np.ndarray:
        first = block * _ENTRY_BLOCK
        block_codes = codes[first : first + _ENTRY_BLOCK]
        entries = np.arange(first, first + len(block_codes), dtype=np.uint64)
        return (_hashes(block_codes) & table.high) | entries

    table.fill(executor, -(-count // _ENTRY_BLOCK), block_words)
    order = (table.words & np.uint64(table.value_mask)).astype(np.intp)
    return order, table.starts, table.shift
