"""The loaded hotlist: entries from several files, exact and misread-tolerant matching."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from bisect import bisect_right
from collections.abc import Mapping, Sequence
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
    vrm_code,
)
from edge.hotlist.index import (
    ALPHABET,
    CLASS_TRANSLATION,
    BucketIndex,
    class_variant_arrays,
    class_variants,
    entry_bits,
    exact_arrays,
    may_be_one_edit,
)
from edge.plates import normalise
from edge.types import Hit, HotlistEntry, Marker, MatchKind

logger = logging.getLogger(__name__)

MAX_SUPPORTED_DISTANCE = 1
"""The misread index holds one-deletion variants, so it finds reads within one edit."""
_SHOWN_PROBLEMS = 20


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
    """Entries of one or more parsed files, held as numpy columns and two constant-time indexes.

    Build it with `load_hotlists`. Read-only once built, so threads may share it freely.
    """

    def __init__(self, files: Sequence[ParsedFile]):
        self._files = [(parsed.path, parsed.data) for parsed in files]
        self._first_entry = list(itertools.accumulate((len(parsed) for parsed in files), initial=0))

        def column(name: str, dtype: type) -> np.ndarray:
            arrays = [getattr(parsed, name) for parsed in files]
            if len(arrays) == 1:
                return arrays[0]
            return np.concatenate(arrays) if arrays else np.zeros(0, dtype)

        self._row_start = column("row_start", np.int64)
        codes = column("codes", np.int64)
        self._markers = column("markers", np.uint8)
        self._expires = column("expires", np.int32)
        count = len(codes)
        self._exact = BucketIndex(*exact_arrays(codes), count)
        self._misread = BucketIndex(*class_variant_arrays(codes))
        self._entry_bits = entry_bits(count)
        self._codes_array = codes
        self._codes = memoryview(codes)
        self._expires_view = memoryview(self._expires)

    def __len__(self) -> int:
        return len(self._codes_array)

    @property
    def paths(self) -> list[Path]:
        return [path for path, _ in self._files]

    @property
    def index_bytes(self) -> int:
        """Memory held by the columns and indexes (not counting the files' own bytes)."""
        columns = (self._codes_array, self._markers, self._expires, self._row_start)
        return sum(c.nbytes for c in columns) + self._exact.nbytes + self._misread.nbytes

    def marker_counts(self, at: dt.date | None = None) -> dict[Marker, int]:
        """Entries carrying each marker (active on `at`, today by default)."""
        active = self._expires >= days(at or dt.date.today())
        return {
            marker: int(np.count_nonzero(active & (self._markers & bit != 0)))
            for marker, bit in MARKER_BITS.items()
        }

    def entry(self, number: int) -> HotlistEntry:
        """The full entry, decoded from its line of the file it was loaded from."""
        path, data = self._files[bisect_right(self._first_entry, number) - 1]
        entry_id, vrm, _, action, information, source, added, expires = decode_row(
            data, int(self._row_start[number])
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
        """The normalised VRM of an entry, from its code (`vrm_code` reversed)."""
        code, chars = self._codes[number], []
        while code > 1:
            code, digit = divmod(code, 36)
            chars.append(ALPHABET[digit])
        return "".join(reversed(chars))

    def exact_matches(self, vrm: str, at: dt.date | None = None) -> list[int]:
        """Numbers of the active entries whose VRM is exactly `vrm` (normalised)."""
        if not MIN_VRM_CHARS <= len(vrm) <= MAX_VRM_CHARS or not (vrm.isascii() and vrm.isalnum()):
            return []
        code = vrm_code(vrm)
        day = days(at or dt.date.today())
        found = []
        for number in self._exact.lookup(code):
            if self._codes[number] == code and self._expires_view[number] >= day:
                found.append(number)
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
        if not MIN_VRM_CHARS - 1 <= len(vrm) <= MAX_VRM_CHARS + 1 or not (
            vrm.isascii() and vrm.isalnum()
        ):
            return []
        day = days(at or dt.date.today())
        read_classes = vrm.translate(CLASS_TRANSLATION)
        bits, mask = self._entry_bits, (1 << self._entry_bits) - 1
        candidates = set()
        for key, position in class_variants(vrm, with_deletions=max_distance > 0):
            for value in self._misread.lookup(key):
                if may_be_one_edit(position, value >> bits):
                    candidates.add(value & mask)
        found = []
        for number in candidates:
            if self._expires_view[number] < day:
                continue
            entry_vrm = self.vrm(number)
            if _within_edits(read_classes, entry_vrm.translate(CLASS_TRANSLATION), max_distance):
                found.append((number, max(1, _distance(vrm, entry_vrm))))
        return sorted(found, key=lambda item: (item[1], item[0]))

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


def load_hotlists(paths: Sequence[Path], *, today: dt.date | None = None) -> Hotlist:
    """Load and check all files together, or raise HotlistError naming every problem.

    All or nothing: one bad line rejects the whole set. Entries already expired are skipped with
    a warning (a list that was valid yesterday must still load); they would never match anyway.
    """
    files = parse_files(paths, today or dt.date.today(), expired_is_error=False)
    for parsed in files:
        if parsed.expired:
            logger.warning("%s: skipped %d expired entries", parsed.path, parsed.expired)
        parsed.release_checks()
    return Hotlist(files)


def parse_files(
    paths: Sequence[Path], today: dt.date, *, expired_is_error: bool
) -> list[ParsedFile]:
    """Parse each file and check entry ids across all of them; raise HotlistError on problems."""
    files = [parse_file(Path(path), today, expired_is_error=expired_is_error) for path in paths]
    problems = [problem for parsed in files for problem in parsed.problems]
    total = sum(parsed.problem_count for parsed in files)
    if not total:
        problems = _duplicate_ids(files)
        total = len(problems)
    if total:
        raise HotlistError(sorted(problems, key=lambda p: (str(p.path), p.line)), total)
    return files


def _duplicate_ids(files: Sequence[ParsedFile]) -> list[Problem]:
    """Entry ids must be unique across all loaded files: alerts and the log cite entries by id."""
    hashes = np.concatenate([parsed.id_hash for parsed in files] or [np.zeros(0, np.uint64)])
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
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


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: missing, extra and wrong characters each count 1."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def _distance(a: str, b: str) -> int:
    """`edit_distance`, with short cuts for the usual misreads: at equal lengths, up to two
    substitutions cannot be beaten (matching a shifted character costs an insertion and a
    deletion); at lengths one apart, one missing or extra character is distance 1."""
    if len(a) == len(b):
        differing = sum(x != y for x, y in zip(a, b, strict=True))
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
