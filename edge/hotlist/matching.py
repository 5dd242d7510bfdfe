"""The loaded hotlist: entries from several files, exact and misread-tolerant matching."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from operator import ne
from pathlib import Path

import numpy as np

from edge.hotlist.csvfile import (
    MARKER_BITS,
    MAX_VRM_CHARS,
    MIN_VRM_CHARS,
    ParsedFile,
    Problem,
    days,
    decode_row,
    parse_file,
)
from edge.hotlist.index import (
    ALPHABET,
    CLASS_TRANSLATION,
    HASH_MULTIPLIER,
    MASK64,
    WHOLE,
    BucketTable,
    class_keys,
    class_variant_words,
    code_lengths,
    exact_order,
    value_bits,
)
from edge.plates import normalise
from edge.types import Hit, HotlistEntry, Marker, MatchKind, PlateRead

logger = logging.getLogger(__name__)

MAX_SUPPORTED_DISTANCE = 1
"""The misread index holds one-deletion variants, so it finds reads within one edit."""
_SHOWN_PROBLEMS = 20
_ENTRY_BLOCK = 1 << 16
_TOP_BIT = np.uint64(1 << 63)
_MALLOC_TRIM_BLOCK = 16 << 20
_TRIPLES = [a + b + c for a in ALPHABET for b in ALPHABET for c in ALPHABET]
"""Every three base-36 digits, for turning a VRM code back into text three characters at a time."""
_HEADS = [triple.lstrip("0")[1:] for triple in _TRIPLES]
"""The characters after the leading 1 of a code's top (at most three) base-36 digits."""
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SMALLEST_CODE, _CODE_LIMIT = 36**MIN_VRM_CHARS, 2 * 36**MAX_VRM_CHARS
"""The code (`ParsedFile.codes`) of a VRM of MIN_VRM_CHARS to MAX_VRM_CHARS characters lies in this range."""


@contextmanager
def loading_threads() -> Iterator[Executor]:
    """One worker thread per core this process may use, for reading, checking and indexing."""
    _keep_freed_memory_in_thread_heaps()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(cores or 1, thread_name_prefix="hotlist-load") as executor:
        yield executor


def _keep_freed_memory_in_thread_heaps() -> None:
    """Let each block's temporaries (a few MiB) be reused, not handed back and faulted in again.

    glibc gives the free memory at the top of a thread's heap back to the kernel once more than
    its trim threshold is free: 128 KiB at first, so every block's temporaries went back and
    were faulted in anew (1.4 GB of page faults for ten million entries). glibc raises the
    threshold to twice the largest mmap-ed block freed so far, up to 32 MiB blocks, so freeing
    one of 16 MiB makes it 32 MiB. (Other C libraries: no effect.)
    """
    np.empty(_MALLOC_TRIM_BLOCK, np.uint8)


class HotlistError(Exception):
    """Hotlist files that cannot be loaded; `.problems` lists each (file, line, field, reason)."""

    def __init__(self, problems: Sequence[Problem], total: int | None = None):
        self.problems = list(problems)
        self.total = max(total or 0, len(self.problems))
        lines = [str(problem) for problem in self.problems[:_SHOWN_PROBLEMS]]
        if self.total > len(lines):
            lines.append(f"... and {self.total - len(lines)} more problems")
        super().__init__("\n".join(lines))


class Hotlist:
    """Entries of one or more parsed files, held as numpy columns, and two constant-time indexes.

    Entries are stored in the bucket order of their exact VRM code (`exact_order`), so the exact
    index is just the start of each bucket; the misread index is a `BucketTable` of the
    confusion-class variants. Lookups read them through memoryviews: a few Python operations
    and no numpy call per read. Build it with `load_hotlists`. Read-only once built, so threads
    may share it freely.
    """

    def __init__(self, files: Sequence[ParsedFile], executor: Executor):
        """Index the entries of `files`, taking them over: their columns are emptied (their
        bytes stay), so that memory is free again before the misread table is built."""
        self._files = [(parsed.path, parsed.data) for parsed in files]
        self._file_starts = list(itertools.accumulate((len(p.data) for p in files), initial=0))
        """Entries' line offsets count from the start of the first file's bytes, through all."""
        columns = _merged_columns(files, self._file_starts)
        for parsed in files:
            parsed.release_entries()
        order, self._exact_starts_array, self._exact_shift = exact_order(columns[0], executor)
        self._codes_array, self._offsets, self._markers, self._expires = executor.map(
            np.take, columns, itertools.repeat(order)
        )
        del columns, order
        self._entry_bits = value_bits(len(self._codes_array))
        self._misread = _misread_table(self._codes_array, self._entry_bits, executor)
        self._misread_words = memoryview(self._misread.words)
        self._misread_starts = memoryview(self._misread.starts)
        self._codes = memoryview(self._codes_array)
        self._expires_view = memoryview(self._expires)
        self._exact_starts = memoryview(self._exact_starts_array)

    def __len__(self) -> int:
        return len(self._codes_array)

    @property
    def paths(self) -> list[Path]:
        return [path for path, _ in self._files]

    @property
    def index_bytes(self) -> int:
        """Memory held by the columns and indexes (not counting the files' own bytes)."""
        columns = (
            self._codes_array,
            self._markers,
            self._expires,
            self._offsets,
            self._exact_starts_array,
        )
        return sum(c.nbytes for c in columns) + self._misread.nbytes

    def marker_counts(self, at: dt.date | None = None) -> dict[Marker, int]:
        """Entries carrying each marker (active on `at`, today by default)."""
        active = self._expires >= days(at or dt.date.today())
        return {
            marker: int(np.count_nonzero(active & (self._markers & bit != 0)))
            for marker, bit in MARKER_BITS.items()
        }

    def entry(self, number: int) -> HotlistEntry:
        """The full entry, decoded from its line of the file it was loaded from."""
        offset = int(self._offsets[number])
        file = bisect_right(self._file_starts, offset) - 1
        path, data = self._files[file]
        entry_id, vrm, _, action, information, source, added, expires = decode_row(
            data, offset - self._file_starts[file]
        )
        bits = int(self._markers[number])
        return HotlistEntry(
            entry_id=entry_id,
            vrm=normalise(vrm),
            markers=frozenset(m for m, bit in MARKER_BITS.items() if bits & bit),
            action=action,
            information=information,
            source=source,
            added=dt.date.fromisoformat(added),
            expires=dt.date.fromisoformat(expires),
            list_name=path.name,
        )

    def vrm(self, number: int) -> str:
        """The normalised VRM of an entry, from its code (`ParsedFile.codes` reversed)."""
        code = self._codes[number]
        if code < 46656:
            return _HEADS[code]
        rest, low = divmod(code, 46656)
        if rest < 46656:
            return _HEADS[rest] + _TRIPLES[low]
        rest, middle = divmod(rest, 46656)
        if rest < 46656:
            return _HEADS[rest] + _TRIPLES[middle] + _TRIPLES[low]
        rest, high = divmod(rest, 46656)
        return _HEADS[rest] + _TRIPLES[high] + _TRIPLES[middle] + _TRIPLES[low]

    def exact_matches(self, vrm: str, at: dt.date | None = None) -> list[int]:
        """Numbers of the active entries whose VRM is exactly `vrm` (normalised)."""
        if not (vrm.isascii() and vrm.isalnum()):
            return []
        code = int("1" + vrm, 36)
        if not _SMALLEST_CODE <= code < _CODE_LIMIT:
            return []
        bucket = ((code * HASH_MULTIPLIER) & MASK64) >> self._exact_shift
        number, end = self._exact_starts[bucket], self._exact_starts[bucket + 1]
        found = []
        codes = self._codes
        while number < end:
            if codes[number] == code and self._expires_view[number] >= _day(at):
                found.append(number)
            number += 1
        return found

    def misread_matches(
        self, vrm: str, max_distance: int = 1, at: dt.date | None = None
    ) -> list[tuple[int, int]]:
        """(entry number, distance) of active entries `vrm` may be a misread of.

        A possible misread is a read whose confusion-class string (O/0/D/Q alike...) equals the
        entry's, or is within `max_distance` (0 or 1) missing, extra or wrong characters of it.
        The distance reported is the plain edit distance between read and VRM, at least 1.
        """
        if not 0 <= max_distance <= MAX_SUPPORTED_DISTANCE:
            raise ValueError(
                f"max_distance must be 0 to {MAX_SUPPORTED_DISTANCE}, not {max_distance}"
            )
        if not (vrm.isascii() and vrm.isalnum()) or not (
            MIN_VRM_CHARS - 1 <= len(vrm) <= MAX_VRM_CHARS + 1
        ):
            return []
        words, starts = self._misread_words, self._misread_starts
        shift, bits = self._misread.shift, self._misread.value_bits
        entry_bits = self._entry_bits
        entry_mask = (1 << entry_bits) - 1
        candidates = set()
        position = WHOLE
        for key in class_keys(vrm, with_deletions=max_distance > 0):
            hashed = (key * HASH_MULTIPLIER) & MASK64
            bucket = hashed >> shift
            end = starts[bucket + 1]
            wanted = hashed >> bits
            at_word = bisect_left(words, wanted << bits, starts[bucket], end)
            while at_word < end and (word := words[at_word]) >> bits == wanted:
                # Variants meeting mean at most one edit when one is a whole class string or
                # both lost the same character (AB and BA also meet, at B, but are two apart).
                other = word >> entry_bits & 15
                if position == WHOLE or other == WHOLE or other == position:
                    candidates.add(word & entry_mask)
                at_word += 1
            position = 0 if position == WHOLE else position + 1
        if not candidates:
            return []
        day = _day(at)
        read_classes = vrm.translate(CLASS_TRANSLATION)
        found = []
        expires, vrm_of = self._expires_view, self.vrm
        for number in candidates:
            if expires[number] >= day:
                entry_vrm = vrm_of(number)
                entry_classes = entry_vrm.translate(CLASS_TRANSLATION)
                if _within_edits(read_classes, entry_classes, max_distance):
                    found.append((number, max(1, _distance(vrm, entry_vrm))))
        found.sort(key=lambda item: (item[1], item[0]))
        return found

    def match(
        self,
        text: str,
        alternatives: Sequence[str] = (),
        *,
        max_distance: int = 1,
        at: dt.date | None = None,
    ) -> list[Hit]:
        """Exact hits on `text`, then possible misreads of `text` or an alternative reading.

        One hit per entry: an exact hit is never also reported as a misread, and a misread keeps
        its smallest distance (on `text` when tied). Expired entries never match.
        """
        at = at or dt.date.today()
        read = normalise(text)
        exact = self.exact_matches(read, at)
        hits = [Hit(self.entry(n), MatchKind.EXACT, 0, read) for n in exact]
        best: dict[int, tuple[int, str]] = {}
        for candidate in dict.fromkeys([read, *map(normalise, alternatives)]):
            for number, distance in self.misread_matches(candidate, max_distance, at):
                if number not in exact and (number not in best or distance < best[number][0]):
                    best[number] = (distance, candidate)
        for number, (distance, candidate) in sorted(best.items(), key=lambda kv: (kv[1][0], kv[0])):
            hits.append(Hit(self.entry(number), MatchKind.POSSIBLE_MISREAD, distance, candidate))
        return hits


def _day(at: dt.date | None) -> int:
    """Days since 1970-01-01 of `at`, today by default."""
    return (at or dt.date.today()).toordinal() - _EPOCH_ORDINAL


def _merged_columns(
    files: Sequence[ParsedFile], file_starts: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Codes, line offsets (counted through all files' bytes), markers and expiry of all entries."""
    if len(files) == 1:
        (parsed,) = files
        return parsed.codes, parsed.row_start, parsed.markers, parsed.expires
    offset_type = np.uint32 if file_starts[-1] < 1 << 32 else np.int64
    return (
        np.concatenate([p.codes for p in files] or [np.zeros(0, np.int64)]),
        np.concatenate(
            [
                p.row_start.astype(offset_type) + offset_type(start)
                for p, start in zip(files, file_starts, strict=False)
            ]
            or [np.zeros(0, offset_type)]
        ),
        np.concatenate([p.markers for p in files] or [np.zeros(0, np.uint8)]),
        np.concatenate([p.expires for p in files] or [np.zeros(0, np.int32)]),
    )


def _misread_table(codes: np.ndarray, entry_bits: int, executor: Executor) -> BucketTable:
    """The bucket table of every entry's `class_keys`, with deletions."""
    lengths = code_lengths(codes)
    total = len(codes) + int(lengths.sum(dtype=np.int64))
    # 32 to 64 words a bucket: the bucket starts stay small (8 MiB for ten million entries), and
    # a probe's binary search stays within a few hundred bytes of the words.
    table = BucketTable(total, (WHOLE + 1) << entry_bits, max(1, total.bit_length() - 6))

    def block_words(block: int) -> np.ndarray:
        rows = slice(block * _ENTRY_BLOCK, (block + 1) * _ENTRY_BLOCK)
        return class_variant_words(
            codes[rows], lengths[rows], block * _ENTRY_BLOCK, entry_bits, table.high
        )

    table.fill(executor, -(-len(codes) // _ENTRY_BLOCK), block_words)
    return table


def load_hotlists(paths: Sequence[Path], *, today: dt.date | None = None) -> Hotlist:
    """Load and check all files together, or raise HotlistError naming every problem.

    All or nothing: one bad line rejects the whole set. Entries already expired are skipped with
    a warning (a list that was valid yesterday must still load); they would never match anyway.
    """
    with loading_threads() as executor:
        files = parse_files(
            paths, today or dt.date.today(), expired_is_error=False, executor=executor
        )
        for parsed in files:
            if parsed.expired:
                logger.warning("%s: skipped %d expired entries", parsed.path, parsed.expired)
            parsed.release_checks()
        return Hotlist(files, executor)


def parse_files(
    paths: Sequence[Path], today: dt.date, *, expired_is_error: bool, executor: Executor
) -> list[ParsedFile]:
    """Parse each file and check entry ids across all of them; raise HotlistError on problems."""
    files = [
        parse_file(Path(path), today, expired_is_error=expired_is_error, executor=executor)
        for path in paths
    ]
    problems = [problem for parsed in files for problem in parsed.problems]
    total = sum(parsed.problem_count for parsed in files)
    if not total:
        problems = _duplicate_ids(files, executor)
        total = len(problems)
    if total:
        raise HotlistError(sorted(problems, key=lambda p: (str(p.path), p.line)), total)
    return files


def _duplicate_ids(files: Sequence[ParsedFile], executor: Executor) -> list[Problem]:
    """Entry ids must be unique across all loaded files: alerts and the log cite entries by id.

    Id hashes are split by their top bit and the two halves sorted at once; equal neighbours
    are repeated ids (or, once in 2**64, a hash collision, which the text comparison below
    settles).
    """
    hashes = np.concatenate([parsed.id_hash for parsed in files] or [np.zeros(0, np.uint64)])
    upper = hashes >= _TOP_BIT
    halves = (hashes[~upper], hashes[upper])
    list(executor.map(np.ndarray.sort, (half.view(np.int64) for half in halves)))
    repeated = np.concatenate([half[1:][half[1:] == half[:-1]] for half in halves])
    if not len(repeated):
        return []
    first_seen: dict[str, tuple[Path, int]] = {}
    problems = []
    for parsed in files:
        for row in np.flatnonzero(np.isin(parsed.id_hash, repeated)).tolist():
            entry_id = decode_row(parsed.data, int(parsed.row_start[row]))[0]
            line = int(parsed.lines[row])
            if entry_id in first_seen:
                path, first_line = first_seen[entry_id]
                where = f"line {first_line}" if path == parsed.path else f"{path} line {first_line}"
                problems.append(
                    Problem(
                        parsed.path,
                        line,
                        "entry_id",
                        f"duplicate id {entry_id!r} (first on {where})",
                    )
                )
            else:
                first_seen[entry_id] = (parsed.path, line)
    return problems


def alerting_hits(hits: Sequence[Hit], fuzzy_alert: Mapping[Marker, bool]) -> list[Hit]:
    """Exact hits, and the possible misreads of which at least one marker alerts when fuzzy.

    A marker missing from `fuzzy_alert` alerts: silence must be configured, not assumed.
    """
    return [
        hit
        for hit in hits
        if hit.kind is MatchKind.EXACT
        or any(fuzzy_alert.get(marker, True) for marker in hit.entry.markers)
    ]


def plausible_misreads(
    hits: Sequence[Hit], read: PlateRead, doubt_below: float | None
) -> list[Hit]:
    """Exact hits, and the possible misreads the reader's own doubt allows.

    A read within one missing, extra or wrong character of an entry is a possible misread of
    it; on a big list many reads are, by chance. A wrong or extra character the reader was sure
    of (its character confidence at least `doubt_below`) is no misread, so such a hit is
    dropped. Confusable swaps (O/0...) and a missing character are always kept, as are hits on
    an alternative of another length, whose characters have no confidence of their own.
    `doubt_below` None keeps every hit.
    """
    if doubt_below is None:
        return list(hits)
    return [
        hit
        for hit in hits
        if hit.kind is MatchKind.EXACT or not _sure_of_the_edit(hit, read, doubt_below)
    ]


def random_current_style_vrms(rng: np.random.Generator, count: int) -> list[str]:
    """`count` random registrations in the current style ("AB12CDE"), letters and digits drawn
    uniformly: stand-ins for passing traffic."""
    vrms = np.empty((count, 7), np.uint8)
    vrms[:, [0, 1, 4, 5, 6]] = rng.integers(ord("A"), ord("Z") + 1, (count, 5))
    vrms[:, [2, 3]] = rng.integers(ord("0"), ord("9") + 1, (count, 2))
    return [row.tobytes().decode() for row in vrms]


CHANCE_SAMPLES = 500
_CHANCE_SEED = 20261204
"""Fixed, so a list's estimate is the same at every load; not a small number, so that it draws
independently of lists generated from small seeds (benchmarks.hotlist)."""


def chance_misread_share(
    hotlist: Hotlist,
    max_distance: int,
    doubt_below: float | None,
    *,
    samples: int = CHANCE_SAMPLES,
    at: dt.date | None = None,
) -> float:
    """The share of vehicles not on `hotlist`, read exactly and for sure, that it would still
    report as a possible misread of an entry, estimated on `samples` random current-style
    registrations (real traffic clusters, so it is a low estimate on a real list)."""
    vrms = random_current_style_vrms(np.random.default_rng(_CHANCE_SEED), samples)
    sure_reads = [PlateRead(vrm, 1.0, (1.0,) * len(vrm)) for vrm in vrms]
    flagged, unlisted = misread_counts(hotlist, sure_reads, max_distance, doubt_below, at)
    return flagged / unlisted if unlisted else 0.0


def misread_counts(
    hotlist: Hotlist,
    reads: Sequence[PlateRead],
    max_distance: int,
    doubt_below: float | None,
    at: dt.date | None = None,
) -> tuple[int, int]:
    """Of `reads` not on `hotlist` (no exact hit), how many it still reports as a possible
    misread of an entry, as the daemon matches them; and how many reads that is of."""
    flagged = unlisted = 0
    for read in reads:
        hits = hotlist.match(read.text, max_distance=max_distance, at=at)
        if any(hit.kind is MatchKind.EXACT for hit in hits):
            continue
        unlisted += 1
        flagged += bool(plausible_misreads(hits, read, doubt_below))
    return flagged, unlisted


def _sure_of_the_edit(hit: Hit, read: PlateRead, doubt_below: float) -> bool:
    """Whether the one wrong or extra character that separates the hit's text from its entry
    (over confusion classes) was read at least `doubt_below` sure."""
    text = hit.matched_text
    if len(text) != len(read.text) or len(read.char_confidences) != len(text):
        return False
    ours, theirs = text.translate(CLASS_TRANSLATION), hit.entry.vrm.translate(CLASS_TRANSLATION)
    if len(ours) == len(theirs):
        edited = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    elif len(ours) == len(theirs) + 1:
        edited = [i for i in range(len(ours)) if ours[:i] + ours[i + 1 :] == theirs]
    else:
        return False
    return bool(edited) and min(read.char_confidences[i] for i in edited) >= doubt_below


class RepeatAlerts:
    """Drops possible-misread hits on an entry that the same camera alerted on within
    `window_s` (of capture time) before the pass began: most likely the same vehicle read again
    in part or misread after its track broke (say "H01HOK" after "KH01HOK"), not a sighting
    worth a second alert. Exact hits always alert."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._alerted: dict[tuple[str, str], float] = {}
        """(camera id, entry id) -> last sighting of the latest pass alerted on the entry."""

    def new_hits(self, camera_id: str, hits: Sequence[Hit], first_seen: float) -> list[Hit]:
        return [
            hit
            for hit in hits
            if hit.kind is MatchKind.EXACT
            or first_seen - self._alerted.get((camera_id, hit.entry.entry_id), -np.inf)
            > self.window_s
        ]

    def alerted(self, camera_id: str, hits: Sequence[Hit], last_seen: float) -> None:
        for hit in hits:
            key = (camera_id, hit.entry.entry_id)
            self._alerted[key] = max(self._alerted.get(key, -np.inf), last_seen)
        horizon = last_seen - self.window_s
        for key in [key for key, seen in self._alerted.items() if seen < horizon]:
            del self._alerted[key]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: missing, extra and wrong characters each count 1.

    Bit-parallel (Myers 1999, as in Hyyro 2001): one column of the distance table is a pair of
    bit vectors over the characters of `a`, updated with a few integer operations per character
    of `b`.
    """
    if not a or not b:
        return len(a) + len(b)
    matches: dict[str, int] = {}
    for i, char in enumerate(a):
        matches[char] = matches.get(char, 0) | 1 << i
    every, last = (1 << len(a)) - 1, 1 << (len(a) - 1)
    plus, minus, distance = every, 0, len(a)
    for char in b:
        match = matches.get(char, 0)
        vertical = match | minus
        horizontal = ((((match & plus) + plus) ^ plus) | match) & every
        horizontal_plus = minus | (~(horizontal | plus) & every)
        horizontal_minus = plus & horizontal
        if horizontal_plus & last:
            distance += 1
        elif horizontal_minus & last:
            distance -= 1
        horizontal_plus = (horizontal_plus << 1 | 1) & every
        horizontal_minus = (horizontal_minus << 1) & every
        plus = horizontal_minus | (~(vertical | horizontal_plus) & every)
        minus = horizontal_plus & vertical
    return distance


def _distance(a: str, b: str) -> int:
    """`edit_distance`, with short cuts for the usual misreads: at equal lengths, up to two
    substitutions cannot be beaten (matching a shifted character costs an insertion and a
    deletion); at lengths one apart, one missing or extra character is distance 1."""
    if len(a) == len(b):
        differing = sum(map(ne, a, b))
        if differing <= 2:
            return differing
    elif _within_edits(a, b, 1):
        return 1
    return edit_distance(a, b)


def _within_edits(a: str, b: str, max_distance: int) -> bool:
    """Whether a and b are equal or (max_distance 1) one missing, extra or wrong character apart."""
    if a == b:
        return True
    if max_distance == 0 or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i + 1 :] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1 :]
