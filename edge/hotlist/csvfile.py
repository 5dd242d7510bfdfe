"""Reading and validating one hotlist CSV file into compact columns, vectorised and on all cores.

A force's list can hold ten million lines, so nothing here loops in Python per line. The file is
read once into a private copy (its bytes later give each hit its full entry) and cut into blocks
of whole lines. Each block is split into fields and checked with array operations on its bytes,
in a thread per core (numpy releases the GIL in its loops), and its entries are written straight
into the file's columns. Python runs per block, per problem and per distinct markers value.
Text columns are not copied: an entry keeps the offset of its line, and the line is decoded again
(`decode_row`) only when the entry is hit.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import mmap
import os
import re
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.hotlist.index import HASH_MULTIPLIER
from edge.types import Marker

HEADER = ("entry_id", "vrm", "markers", "action", "information", "source", "added", "expires")
MIN_VRM_CHARS = 2
MAX_VRM_CHARS = 10
"""UK VRMs have 2 to 7 characters; 10 leaves room for foreign plates and keeps codes in int64."""
MAX_ENTRY_ID_CHARS = 64
MAX_VRM_FIELD_BYTES = 20
MARKER_BITS = {marker: 1 << bit for bit, marker in enumerate(Marker)}
EPOCH = dt.date(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH.toordinal()
MAX_PROBLEMS_KEPT = 500

_COMMA, _NEWLINE, _CR, _QUOTE, _SPACE, _DASH = 44, 10, 13, 34, 32, 45
_BOM = b"\xef\xbb\xbf"
_BLOCK_BYTES = 1 << 21
"""Lines are checked in blocks of about this many bytes: big enough that numpy's per-call cost
is small, small enough that a block's temporaries stay in the CPU caches."""
_READ_BYTES = 1 << 23
_REQUIRED_TEXT = {
    "action": "missing action (what officers should do)",
    "source": "missing source (who provided the entry)",
}
_GOLDEN = np.uint64(HASH_MULTIPLIER)
_LOW_BYTES = np.array([(1 << 8 * count) - 1 for count in range(9)], np.uint64)
"""_LOW_BYTES[k]: a mask of the low k bytes of a word."""
_POWERS_OF_36 = 36 ** np.arange(MAX_VRM_CHARS + 1, dtype=np.int64)
_DATE_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9])
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int32)
"""Days in each month (index 1..12) of a common year."""
_DAYS_BEFORE_MONTH = np.concatenate(([0], np.cumsum(_MONTH_DAYS[:-1]))).astype(np.int32)
"""Days in a common year before the first of each month (index 1..12)."""
_LEAP_YEAR = np.array([calendar.isleap(year) for year in range(10_000)])
_DAYS_BEFORE_YEAR = np.array(
    [0, *(dt.date(year, 1, 1).toordinal() - _EPOCH_ORDINAL for year in range(1, 10_000))], np.int32
)
"""Days from 1970-01-01 to 1 January of each year 1..9999 (index 0 is unused)."""
_NOT_BLANK = re.compile(rb"\S")


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.reason}"


@dataclass(slots=True)
class ParsedFile:
    """The entries of one file as columns (one element per entry) and the problems found."""

    path: Path
    data: bytes | mmap.mmap
    """The file's bytes, read once (a private copy: the file itself may change)."""
    row_start: np.ndarray
    """Offset in `data` of each entry's line (uint32 below 4 GiB, else int64)."""
    lines: np.ndarray
    """int32 file line number of each entry (header = line 1)."""
    codes: np.ndarray
    """int64 exact code of the normalised VRM: its characters as base-36 digits behind a leading
    1 (int("1" + vrm, 36)), so no two VRMs share a code and the length is kept."""
    markers: np.ndarray
    """uint8 bit set of `MARKER_BITS`."""
    expires: np.ndarray
    """int32 days since 1970-01-01."""
    id_hash: np.ndarray
    """uint64 hash of the entry id, for finding duplicates across files."""
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    """All problems, including those beyond the first MAX_PROBLEMS_KEPT kept in `problems`."""
    expired: int = 0
    """Entries dropped because their expiry date has passed (when expiry is not an error)."""

    def __len__(self) -> int:
        return len(self.codes)

    def release_checks(self) -> None:
        """Free the columns only needed for checking (line numbers, id hashes) before indexing."""
        self.lines = np.zeros(0, np.int32)
        self.id_hash = np.zeros(0, np.uint64)

    def release_entries(self) -> None:
        """Free the entry columns once an index holds its own copy (the bytes stay)."""
        self.row_start = np.zeros(0, self.row_start.dtype)
        self.codes = np.zeros(0, np.int64)
        self.markers = np.zeros(0, np.uint8)
        self.expires = np.zeros(0, np.int32)


def days(date: dt.date) -> int:
    """Days since 1970-01-01."""
    return date.toordinal() - _EPOCH_ORDINAL


def from_days(value: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(value))


def decode_row(data: bytes | mmap.mmap, start: int) -> list[str]:
    """The fields of the (validated) line starting at `start`, unquoted and stripped."""
    size = 256
    while True:
        window = data[start : start + size]
        end = _record_end(window)
        if end is not None or start + size >= len(data):
            break
        size *= 4
    text = window[: len(window) if end is None else end].decode("utf-8")
    return [value.strip() for value in next(csv.reader([text], skipinitialspace=True))]


def _record_end(window: bytes) -> int | None:
    """Offset of the first newline outside quotes in `window`, or None."""
    end = window.find(b"\n")
    while end != -1 and window.count(b'"', 0, end) % 2:
        end = window.find(b"\n", end + 1)
    return None if end == -1 else end


def parse_file(
    path: Path, today: dt.date, *, expired_is_error: bool, executor: Executor
) -> ParsedFile:
    """Read and check one file; expired entries are problems if `expired_is_error`, else dropped.

    `executor` runs the blocks of lines (a thread per core).
    """
    try:
        data = _read(path, executor)
    except OSError as error:
        parsed = _empty(path, b"")
        parsed.problems.append(Problem(path, 0, "file", f"cannot read: {error.strerror}"))
        parsed.problem_count = 1
        return parsed
    return _FileParser(path, data, days(today), expired_is_error).parse(executor)


def _read(path: Path, executor: Executor) -> bytes | mmap.mmap:
    """The file's bytes in an anonymous private mapping, read in pieces by all workers at once.

    A file that shrinks while it is read ends at the first short piece, as a plain read would.
    """
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if not size:
            return file.read()
        # Private, not mmap's default shared mapping: shared anonymous memory is shmem, which
        # gets no transparent huge pages, and faulting 4 KiB pages in is much of a big load.
        data = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux
            data.madvise(mmap.MADV_HUGEPAGE)
        view = memoryview(data)

        def read_piece(start: int) -> int:
            end, at = min(start + _READ_BYTES, size), start
            while at < end and (count := os.preadv(file.fileno(), [view[at:end]], at)):
                at += count
            return at

        for start, reached in zip(
            range(0, size, _READ_BYTES),
            executor.map(read_piece, range(0, size, _READ_BYTES)),
            strict=True,
        ):
            if reached < min(start + _READ_BYTES, size):
                view.release()
                return data[:reached]
        view.release()
        return data


def _empty(path: Path, data: bytes | mmap.mmap) -> ParsedFile:
    return ParsedFile(
        path,
        data,
        np.zeros(0, np.uint32),
        np.zeros(0, np.int32),
        np.zeros(0, np.int64),
        np.zeros(0, np.uint8),
        np.zeros(0, np.int32),
        np.zeros(0, np.uint64),
    )


def _words(array: np.ndarray) -> np.ndarray:
    """A read-only view: element i is the little-endian 8-byte word at byte offset i."""
    return np.ndarray((max(len(array) - 7, 0),), "<u8", array, 0, (1,))


@dataclass(slots=True)
class _Piece:
    """A run of whole lines (cut after a newline), counted before the file is split into fields."""

    start: int
    end: int
    newlines: int
    quotes: int
    bad_utf8_at: int | None
    """Offset of the first byte that is not valid UTF-8, if any."""


@dataclass(slots=True)
class _Block:
    """Whole lines, starting outside quotes, checked by one worker."""

    start: int
    end: int
    first_line: int
    out_at: int
    """Where its entries go in the file's columns (each line gives at most one entry)."""
    capacity: int


@dataclass(slots=True)
class _BlockResult:
    rows: int
    problems: list[Problem]
    problem_count: int
    expired: int


class _FileParser:
    """Checks one file: counts in pieces, then splits and checks blocks of lines in parallel."""

    def __init__(self, path: Path, data: bytes | mmap.mmap, today: int, expired_is_error: bool):
        self.path = path
        self.data = data
        self.array = np.frombuffer(data, np.uint8) if len(data) else np.zeros(0, np.uint8)
        self.today = today
        self.expired_is_error = expired_is_error
        self.words = _words(self.array)
        self.result = _empty(path, data)
        self.markers_cache: dict[int, tuple[int, str | None]] = {}
        """Parsed markers values by the hash of their bytes, shared by the blocks."""

    def parse(self, executor: Executor) -> ParsedFile:
        if not len(self.data) or not _NOT_BLANK.search(self.data):
            self._file_problem(
                1, "header", f"the file is empty; its first line must be {','.join(HEADER)}"
            )
            return self.result
        pieces = list(executor.map(self._count, _cuts(self.data, 0, _BLOCK_BYTES)))
        bad_utf8 = next((piece for piece in pieces if piece.bad_utf8_at is not None), None)
        if bad_utf8 is not None:
            line = 1 + sum(piece.newlines for piece in pieces[: pieces.index(bad_utf8)])
            before = self.array[bad_utf8.start : bad_utf8.bad_utf8_at]
            self._file_problem(
                line + int(np.count_nonzero(before == _NEWLINE)), "file", "not valid UTF-8 text"
            )
            return self.result
        if sum(piece.quotes for piece in pieces) % 2:
            line = self._first_line_with_odd_quotes(pieces)
            self._file_problem(line, "line", "a quoted field is never closed")
            return self.result
        begin = len(_BOM) if self.data[: len(_BOM)] == _BOM else 0
        header_end = self.data.find(b"\n", begin)
        header_end = len(self.data) if header_end == -1 else header_end
        if not self._header(begin, header_end):
            return self.result
        blocks = _blocks(pieces, header_end + 1, self.data)
        capacity = sum(block.capacity for block in blocks)
        columns = _columns(capacity, len(self.data))
        results = list(executor.map(lambda block: self._block(block, columns), blocks))
        self._collect(blocks, results, columns)
        return self.result

    # -- whole-file checks -------------------------------------------------------------------

    def _count(self, cut: tuple[int, int]) -> _Piece:
        start, end = cut
        piece = self.array[start:end]
        bad_utf8_at = None
        if len(piece) and int(piece.max()) >= 128:
            try:
                self.data[start:end].decode("utf-8")
            except UnicodeDecodeError as error:
                bad_utf8_at = start + error.start
        return _Piece(
            start,
            end,
            int(np.count_nonzero(piece == _NEWLINE)),
            int(np.count_nonzero(piece == _QUOTE)),
            bad_utf8_at,
        )

    def _first_line_with_odd_quotes(self, pieces: list[_Piece]) -> int:
        """The first line holding an odd number of quotes (pieces hold whole lines)."""
        line = 1
        for piece in pieces:
            if piece.quotes:
                segment = self.array[piece.start : piece.end]
                lines = np.searchsorted(
                    np.flatnonzero(segment == _NEWLINE), np.flatnonzero(segment == _QUOTE)
                )
                odd = np.flatnonzero(np.bincount(lines) % 2)
                if len(odd):
                    return line + int(odd[0])
            line += piece.newlines
        return line

    def _file_problem(self, line: int, field_name: str, reason: str) -> None:
        self.result.problems.append(Problem(self.path, line, field_name, reason))
        self.result.problem_count += 1

    def _header(self, start: int, end: int) -> bool:
        text = self.data[start:end].decode("utf-8")
        names = tuple(name.strip() for name in text.rstrip("\r").split(","))
        if names == HEADER:
            return True
        self._file_problem(1, "header", f"expected {','.join(HEADER)!r}, found {','.join(names)!r}")
        return False

    def _block(self, block: _Block, columns: ParsedFile) -> _BlockResult:
        checker = _BlockChecker(self, block)
        rows = checker.check(columns)
        return _BlockResult(rows, checker.problems, checker.problem_count, checker.expired)

    def _collect(self, blocks: list[_Block], results: list[_BlockResult], columns: ParsedFile):
        """Problems in line order; the columns without the gaps left by lines with no entry."""
        result = self.result
        for block_result in results:
            result.problems.extend(block_result.problems)
            result.problem_count += block_result.problem_count
            result.expired += block_result.expired
        result.problems.sort(key=lambda problem: problem.line)
        del result.problems[MAX_PROBLEMS_KEPT:]
        filled = [
            (block.out_at, block.out_at + block_result.rows)
            for block, block_result in zip(blocks, results, strict=True)
        ]
        gaps = any(
            block_result.rows < block.capacity
            for block, block_result in zip(blocks, results, strict=True)
        )
        for name in ("row_start", "lines", "codes", "markers", "expires", "id_hash"):
            column = getattr(columns, name)
            if gaps:
                column = np.concatenate([column[start:end] for start, end in filled])
            setattr(result, name, column)


def _cuts(data: bytes | mmap.mmap, start: int, size: int) -> list[tuple[int, int]]:
    """[start, end) runs of about `size` bytes, each ending just after a newline (or at the end)."""
    cuts = []
    while start < len(data):
        end = data.find(b"\n", min(start + size, len(data)) - 1)
        end = len(data) if end == -1 else end + 1
        cuts.append((start, end))
        start = end
    return cuts


def _blocks(pieces: list[_Piece], first: int, data: bytes | mmap.mmap) -> list[_Block]:
    """Blocks of lines from offset `first` (the line after the header) on.

    A block starts where a piece does, unless that is inside a quoted field (an odd number of
    quotes before it): then the piece continues the block before. Each line gives at most one
    entry, so a block's capacity is its number of lines.
    """
    unterminated_end = len(data) if data[-1:] != b"\n" else None
    blocks: list[_Block] = []
    line, quotes = 1, 0
    for piece in pieces:
        if piece.end > first:
            after_header = piece.start < first
            start = first if after_header else piece.start
            lines = piece.newlines - after_header + (piece.end == unterminated_end)
            if blocks and quotes % 2:
                blocks[-1].end = piece.end
                blocks[-1].capacity += lines
            else:
                out_at = blocks[-1].out_at + blocks[-1].capacity if blocks else 0
                blocks.append(_Block(start, piece.end, line + after_header, out_at, lines))
        line += piece.newlines
        quotes += piece.quotes
    return blocks


def _columns(capacity: int, data_size: int) -> ParsedFile:
    """Empty columns for `capacity` entries; pages are only touched where entries are written."""
    return ParsedFile(
        Path(),
        b"",
        np.empty(capacity, np.uint32 if data_size < 1 << 32 else np.int64),
        np.empty(capacity, np.int32),
        np.empty(capacity, np.int64),
        np.empty(capacity, np.uint8),
        np.empty(capacity, np.int32),
        np.empty(capacity, np.uint64),
    )


class _BlockChecker:
    """Splits one block into lines and fields, checks every field and writes its entries."""

    def __init__(self, file: _FileParser, block: _Block):
        self.file = file
        self.block = block
        self.array = file.array
        self.last = len(file.array) - 1
        self.problems: list[Problem] = []
        self.problem_count = 0
        self.expired = 0
        self.newlines = np.zeros(0, np.int64)
        """Offsets of every newline in the block, quoted or not (for line numbers)."""
        self.field_starts = np.zeros(0, np.int64)
        """Where each field starts (just after a separator outside quotes)."""
        self.first_field: np.ndarray | None = None
        """Index in `field_starts` of each entry line's first field; None when every line of
        the block has all its fields (then entry i's fields start at index width * i)."""

    # -- problems ----------------------------------------------------------------------------

    def _report(self, offsets: np.ndarray, field_name: str, reason) -> None:
        """One problem per offset (of a line start or a byte); `reason` may be a function of it."""
        self.problem_count += len(offsets)
        shown = offsets[: max(0, MAX_PROBLEMS_KEPT - len(self.problems))]
        lines = np.searchsorted(self.newlines, shown) + self.block.first_line
        for offset, line in zip(shown.tolist(), lines.tolist(), strict=True):
            text = reason(offset) if callable(reason) else reason
            self.problems.append(Problem(self.file.path, line, field_name, text))

    def _text(self, start: int, end: int) -> str:
        return self.file.data[start:end].decode("utf-8", "replace")

    # -- splitting ---------------------------------------------------------------------------

    def check(self, out: ParsedFile) -> int:
        """Check the block and write its entries to `out` at the block's place; their number."""
        start, end = self.block.start, self.block.end
        segment = self.array[start:end]
        special = segment == _COMMA
        special |= segment == _NEWLINE
        special |= segment == _QUOTE
        special = np.flatnonzero(special)
        kind = np.take(segment, special)
        is_newline = kind == _NEWLINE
        self.newlines = special[is_newline] + start
        is_quote = kind == _QUOTE
        if is_quote.any():
            # A separator is text when an odd number of quotes come before it in the block (a
            # block starts outside quotes).
            separator = ~(is_quote | np.logical_xor.accumulate(is_quote))
            separators, ends_line = special[separator], is_newline[separator]
        else:
            separators, ends_line = special, is_newline
        unterminated = bool(self.array[end - 1] != _NEWLINE)
        starts = np.empty(len(separators) + 1 + unterminated, np.int64)
        starts[0] = start
        np.add(separators, start + 1, out=starts[1 : len(separators) + 1])
        if unterminated:
            starts[-1] = end + 1
            ends_line = np.append(ends_line, True)
        self.field_starts = starts
        width = len(HEADER)
        if (
            len(ends_line) % width == 0
            and ends_line[width - 1 :: width].all()
            and np.count_nonzero(ends_line) * width == len(ends_line)
        ):
            # Every line has all its fields: field k of entry i starts at starts[width * i + k].
            self.first_field = None
        else:
            self.first_field = self._complete_lines(np.flatnonzero(ends_line) + 1) - width
        row_start, _ = self._bounds(0)
        quoted_newlines = len(self.newlines) != np.count_nonzero(ends_line) - unterminated
        if self.first_field is None and not quoted_newlines:
            line_numbers = np.arange(len(row_start), dtype=np.int32) + self.block.first_line
        else:
            line_numbers = (
                np.searchsorted(self.newlines, row_start) + self.block.first_line
            ).astype(np.int32)
        if is_quote.any():
            self._check_quotes(special[is_quote] + start)
        return self._entries(row_start.copy(), line_numbers, out)

    def _complete_lines(self, line_ends: np.ndarray) -> np.ndarray:
        """Ends of the lines with all their fields; the others are reported unless blank."""
        starts = self.field_starts
        previous = np.concatenate(([0], line_ends[:-1]))
        field_counts = line_ends - previous
        wrong = field_counts != len(HEADER)
        if wrong.any():
            self._report_field_counts(
                starts[previous[wrong]], starts[line_ends[wrong]] - 1, field_counts[wrong]
            )
        return line_ends[~wrong]

    def _bounds(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """[first, end) of field k of every entry line, as split (spaces and quotes kept)."""
        starts, width = self.field_starts, len(HEADER)
        if self.first_field is None:
            entries = (len(starts) - 1) // width
            return starts[k : width * entries : width], starts[k + 1 :: width][:entries] - 1
        return starts[self.first_field + k], starts[self.first_field + k + 1] - 1

    def _report_field_counts(self, first: np.ndarray, last: np.ndarray, counts: np.ndarray) -> None:
        first, last = self._trim(first, last, (_SPACE, _CR))
        bad = first < last
        offsets, counts = first[bad], counts[bad]
        self._report(
            offsets,
            "line",
            lambda offset: (
                f"expected {len(HEADER)} comma-separated fields, found "
                f"{counts[np.searchsorted(offsets, offset)]}"
            ),
        )

    def _trim(
        self, starts: np.ndarray, ends: np.ndarray, blanks: tuple[int, ...] = (_SPACE,)
    ) -> tuple[np.ndarray, np.ndarray]:
        array, last = self.array, self.last
        while (lead := (starts < ends) & _any_of(array[np.minimum(starts, last)], blanks)).any():
            starts = starts + lead
        while (trail := (ends > starts) & _any_of(array[np.maximum(ends - 1, 0)], blanks)).any():
            ends = ends - trail
        return starts, ends

    def _span(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Field `name` of every entry line, without spaces and enclosing quotes."""
        k = HEADER.index(name)
        first, end = self._bounds(k)
        array, blanks = self.array, (_SPACE, _CR) if k == len(HEADER) - 1 else (_SPACE,)
        head = np.take(array, first, mode="clip")
        tail = np.take(array, end - 1, mode="clip")
        edges = _any_of(head, (_SPACE, _QUOTE)) | _any_of(tail, (*blanks, _QUOTE))
        if not edges.any():
            return first, end
        first, end = self._trim(first, end, blanks)
        quoted = (end - first >= 2) & (np.take(array, first, mode="clip") == _QUOTE)
        quoted &= np.take(array, end - 1, mode="clip") == _QUOTE
        if not quoted.any():
            return first, end
        return self._trim(first + quoted, end - quoted)

    def _check_quotes(self, quotes: np.ndarray) -> None:
        """Quotes must enclose whole fields, with each quote inside a field written twice.

        Quotes pair up in order: an odd-numbered quote directly followed by another is an escaped
        quote; otherwise it closes a field, and the next quote opens one. An opening quote must
        start a field and a closing quote end one (spaces around them aside).
        """
        odd, even = quotes[1::2], quotes[2::2]
        escaped = np.zeros(len(odd), bool)
        escaped[: len(even)] = even == odd[: len(even)] + 1
        openings = np.concatenate((quotes[:1], even[~escaped[: len(even)]]))
        closings = odd[~escaped]
        begin, end = self.block.start, self.block.end
        before = self._next_non_space(openings - 1, -1, stop=begin - 1)
        after = self._next_non_space(closings + 1, 1, stop=end)
        edge_before = (before < begin) | _any_of(
            self.array[np.maximum(before, 0)], (_COMMA, _NEWLINE)
        )
        after_byte = self.array[np.minimum(after, self.last)]
        edge_after = (after >= end) | _any_of(after_byte, (_COMMA, _NEWLINE, _CR))
        stray = np.sort(np.concatenate((openings[~edge_before], closings[~edge_after])))
        self._report(
            stray,
            "line",
            "stray quote: a field containing quotes must be entirely enclosed in quotes, "
            'with each quote inside it written twice ("")',
        )

    def _next_non_space(self, offsets: np.ndarray, step: int, stop: int) -> np.ndarray:
        """From each offset, moving by `step`, the first offset not holding a space (or `stop`)."""
        while True:
            inside = (offsets - stop) * step < 0
            moving = inside & (self.array[np.clip(offsets, 0, self.last)] == _SPACE)
            if not moving.any():
                return offsets
            offsets = offsets + moving * step

    # -- fields ------------------------------------------------------------------------------

    def _entries(self, row_start: np.ndarray, line_numbers: np.ndarray, out: ParsedFile) -> int:
        """Check and convert every field, then write the entries (expired ones dropped unless
        expiry is an error)."""
        id_start, id_end = self._span("entry_id")
        self._report(row_start[id_start >= id_end], "entry_id", "missing entry id")
        too_long = id_end - id_start > MAX_ENTRY_ID_CHARS
        self._report(
            row_start[too_long], "entry_id", f"longer than {MAX_ENTRY_ID_CHARS} characters"
        )
        id_hash = self._span_hash(id_start, id_end)
        codes = self._vrms(*self._span("vrm"), row_start)
        for name, reason in _REQUIRED_TEXT.items():
            first, end = self._span(name)
            self._report(row_start[first >= end], name, reason)
        markers = self._markers(*self._span("markers"), row_start)
        added, added_ok = self._dates("added", row_start)
        expires, expires_ok = self._dates("expires", row_start)

        known = added_ok & expires_ok
        today = self.file.today
        self._report(row_start[known & (added > today)], "added", "date added is in the future")
        order_wrong = known & (expires <= added)
        self._report(row_start[order_wrong], "expires", "must be after the date added")
        past = known & ~order_wrong & (expires < today)
        if self.file.expired_is_error:
            self._report(
                row_start[past],
                "expires",
                lambda offset: (
                    "past date: expired on "
                    f"{from_days(expires[np.searchsorted(row_start, offset)])}"
                ),
            )
        elif past.any():
            self.expired = int(np.count_nonzero(past))
            keep = ~past
            row_start, line_numbers, codes, markers = (
                row_start[keep],
                line_numbers[keep],
                codes[keep],
                markers[keep],
            )
            expires, id_hash = expires[keep], id_hash[keep]
        at = slice(self.block.out_at, self.block.out_at + len(row_start))
        out.row_start[at] = row_start
        out.lines[at] = line_numbers
        out.codes[at] = codes
        out.markers[at] = markers
        out.expires[at] = expires
        out.id_hash[at] = id_hash
        return len(row_start)

    def _vrms(self, starts: np.ndarray, ends: np.ndarray, row_start: np.ndarray) -> np.ndarray:
        """Exact codes (`ParsedFile.codes`) of the normalised VRMs: upper case, spaces removed.

        Works on a (character position, entry) matrix of the first MAX_VRM_FIELD_BYTES bytes,
        gathered eight bytes at a time.
        """
        lengths = ends - starts
        width = int(min(lengths.max(initial=0), MAX_VRM_FIELD_BYTES))
        chars = np.ascontiguousarray(self._bytes(starts, width).T)
        active = np.arange(width)[:, None] < lengths
        chars = chars - ((chars - np.uint8(97)) < 26).view(np.uint8) * np.uint8(32)
        digit = (chars - np.uint8(48)) < 10
        used = active & (digit | ((chars - np.uint8(65)) < 26))
        bad_char = (active & ~used & (chars != _SPACE)).any(axis=0)
        count = np.count_nonzero(used, axis=0)
        values = np.where(digit, chars - np.uint8(48), chars - np.uint8(55)) * used
        scale = np.where(used, np.uint8(36), np.uint8(1))
        codes = np.ones(len(starts), np.int64)
        for position in range(width):
            codes *= scale[position]
            codes += values[position]
        self._report(
            row_start[bad_char],
            "vrm",
            lambda offset: self._bad_vrm_reason(offset, starts, ends, row_start),
        )
        wrong_length = ~bad_char & (
            (count < MIN_VRM_CHARS) | (count > MAX_VRM_CHARS) | (lengths > MAX_VRM_FIELD_BYTES)
        )
        self._report(row_start[wrong_length & (lengths <= 0)], "vrm", "missing VRM")
        self._report(
            row_start[wrong_length & (lengths > 0)],
            "vrm",
            f"must have {MIN_VRM_CHARS} to {MAX_VRM_CHARS} letters or digits",
        )
        return codes

    def _bytes(self, starts: np.ndarray, width: int) -> np.ndarray:
        """(entry, byte) matrix of the `width` bytes from each start (zeros past the data)."""
        words = -(-width // 8)
        matrix = np.empty((len(starts), words), np.uint64)
        for word in range(words):
            matrix[:, word] = self._words_at(starts + 8 * word, words * 8)
        return matrix.view(np.uint8)[:, :width]

    def _words_at(self, offsets: np.ndarray, reach: int) -> np.ndarray:
        """The little-endian 8-byte word at each offset (zeros past the data), for offsets at
        most `reach` bytes past a field start in the block."""
        file_words = self.file.words
        # Fancy indexing: np.take would first copy the overlapping word view of the file.
        if self.block.end + reach + 8 <= len(self.array):
            return file_words[offsets]
        clamped = np.clip(offsets, 0, len(file_words) - 1)
        shift = ((offsets - clamped) * 8).astype(np.uint64)
        return np.where(shift < 64, file_words[clamped] >> shift, 0)

    def _span_hash(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """64-bit hash of each byte span, eight bytes at a time (equal spans hash alike)."""
        lengths = ends - starts
        longest = int(lengths.max(initial=0))
        result = lengths.astype(np.uint64) * _GOLDEN
        for at in range(0, longest, 8):
            word = self._words_at(starts + at, longest)
            word &= np.take(_LOW_BYTES, lengths - at, mode="clip")
            result ^= word
            result *= _GOLDEN
            result ^= result >> np.uint64(29)
        return result

    def _bad_vrm_reason(
        self, offset: int, starts: np.ndarray, ends: np.ndarray, row_start: np.ndarray
    ) -> str:
        index = int(np.searchsorted(row_start, offset))
        text = self._text(int(starts[index]), int(ends[index]))
        bad = next(c for c in text if not (c.isascii() and (c.isalnum() or c == " ")))
        return f"bad character {bad!r} in {text!r}: only letters, digits and spaces"

    def _markers(self, starts: np.ndarray, ends: np.ndarray, row_start: np.ndarray) -> np.ndarray:
        """Bit sets of the markers fields, parsing each distinct value once per load.

        Rows are grouped by the hash of their bytes; one row per group is parsed (the result is
        shared by all blocks), and every row of a group shares it.
        """
        hashes = self._span_hash(starts, ends)
        distinct, first_row, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        cache = self.file.markers_cache
        parsed = []
        for value, row in zip(distinct.tolist(), first_row.tolist(), strict=True):
            if value not in cache:
                cache[value] = _parse_markers(self._text(int(starts[row]), int(ends[row])))
            parsed.append(cache[value])
        bits = np.array([bits for bits, _ in parsed], np.uint8)[inverse]
        failing = np.array([reason is not None for _, reason in parsed], bool)
        if failing.any():
            bad = failing[inverse]
            self._report(
                row_start[bad],
                "markers",
                lambda offset: parsed[inverse[np.searchsorted(row_start, offset)]][1],
            )
        return bits

    def _dates(self, name: str, row_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Days since 1970 of a YYYY-MM-DD column and whether each is a real date."""
        starts, ends = self._span(name)
        lengths = ends - starts
        chars = self._bytes(starts, 10)
        digits = (chars[:, _DATE_DIGITS] - np.uint8(48)).astype(np.int32)
        well_formed = (
            (lengths == 10)
            & (chars[:, 4] == _DASH)
            & (chars[:, 7] == _DASH)
            & (digits < 10).all(axis=1)
        )
        year = digits[:, :4] @ np.array([1000, 100, 10, 1], np.int32)
        month = digits[:, 4] * 10 + digits[:, 5]
        day = digits[:, 6] * 10 + digits[:, 7]
        leap = np.take(_LEAP_YEAR, year, mode="clip")
        month_days = np.take(_MONTH_DAYS, month, mode="clip")
        ok = (
            well_formed
            & (year >= 1)
            & (month >= 1)
            & (month <= 12)
            & (day >= 1)
            & (day <= month_days + ((month == 2) & leap))
        )
        self._report(row_start[lengths <= 0], name, "missing date")
        self._report(
            row_start[~ok & (lengths > 0)],
            name,
            lambda offset: (
                "bad date "
                f"{self._text(*_at(starts, ends, row_start, offset))!r}: "
                "expected a real date written YYYY-MM-DD"
            ),
        )
        days_since_epoch = np.take(_DAYS_BEFORE_YEAR, year, mode="clip") + day - 1
        days_since_epoch += np.take(_DAYS_BEFORE_MONTH, month, mode="clip") + ((month > 2) & leap)
        return days_since_epoch, ok


def _at(
    starts: np.ndarray, ends: np.ndarray, row_start: np.ndarray, offset: int
) -> tuple[int, int]:
    index = int(np.searchsorted(row_start, offset))
    return int(starts[index]), int(ends[index])


def _any_of(values: np.ndarray, wanted: tuple[int, ...]) -> np.ndarray:
    result = values == wanted[0]
    for value in wanted[1:]:
        result |= values == value
    return result


def _parse_markers(text: str) -> tuple[int, str | None]:
    """Bit set of a markers field such as 'Firearms; gangs', or the reason it is not valid."""
    if not text.strip():
        return 0, "missing markers: one or more of firearms, gangs, burglary, drugs (';' between)"
    bits = 0
    for token in text.split(";"):
        name = token.strip().lower()
        if not name:
            return 0, f"empty marker in {text!r}: put one ';' between markers"
        if name not in Marker._value2member_map_:
            return (
                0,
                f"unknown marker {token.strip()!r}: expected firearms, gangs, burglary or drugs",
            )
        bits |= MARKER_BITS[Marker(name)]
    return bits, None
