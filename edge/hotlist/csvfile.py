"""Reading and validating one hotlist CSV file into compact columns, vectorised with numpy.

A force's list can hold ten million lines, so nothing here loops in Python per line: the file is
split into fields with array operations on its bytes, each column is checked and converted as a
whole, and Python runs only per *problem* (to word its message) and per distinct markers value.
Text columns are not copied: an entry keeps the offset of its line in the file's bytes, and the
line is decoded again (`decode_row`) only when the entry is hit.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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

_COMMA, _NEWLINE, _CR, _QUOTE, _SPACE = 44, 10, 13, 34, 32
_CHUNK = 1 << 22
_BLOCK_ROWS = 1 << 20
_REQUIRED_TEXT = {
    "action": "missing action (what officers should do)",
    "source": "missing source (who provided the entry)",
}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ALL_ONES = np.uint64((1 << 64) - 1)


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
    data: bytes
    row_start: np.ndarray
    """int64 offset in `data` of each entry's line."""
    lines: np.ndarray
    """int64 file line number of each entry (header = line 1)."""
    codes: np.ndarray
    """int64 exact code of the normalised VRM (`vrm_code`)."""
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


def vrm_code(vrm: str) -> int:
    """Exact integer code of a normalised VRM: base 36 behind a leading 1, so no two collide."""
    return int("1" + vrm, 36)


def days(date: dt.date) -> int:
    """Days since 1970-01-01."""
    return date.toordinal() - _EPOCH_ORDINAL


def from_days(value: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(value))


def decode_row(data: bytes, start: int) -> list[str]:
    """The fields of the (validated) line starting at `start`, unquoted and stripped."""
    end = data.find(b"\n", start)
    while end != -1 and data.count(b'"', start, end) % 2:
        end = data.find(b"\n", end + 1)
    text = data[start : len(data) if end == -1 else end].decode("utf-8")
    return [value.strip() for value in next(csv.reader([text], skipinitialspace=True))]


def parse_file(path: Path, today: dt.date, *, expired_is_error: bool) -> ParsedFile:
    """Read and check one file; expired entries are problems if `expired_is_error`, else dropped."""
    try:
        data = path.read_bytes()
    except OSError as error:
        parsed = _empty(path, b"")
        parsed.problems.append(Problem(path, 0, "file", f"cannot read: {error.strerror}"))
        parsed.problem_count = 1
        return parsed
    return _Parser(path, data, days(today), expired_is_error).parse()


def _empty(path: Path, data: bytes) -> ParsedFile:
    none = np.zeros(0, np.int64)
    return ParsedFile(
        path,
        data,
        none,
        none,
        none,
        np.zeros(0, np.uint8),
        np.zeros(0, np.int32),
        np.zeros(0, np.uint64),
    )


@dataclass(slots=True)
class _Scan:
    field_starts: np.ndarray
    """Offset just after each comma or newline outside quotes: where the next field starts."""
    newlines: np.ndarray
    """int64 offset of every newline, inside quotes or not (for line numbers)."""
    quotes: np.ndarray
    """int64 offset of every double quote."""
    unbalanced: bool


def _scan(data: bytes, array: np.ndarray, begin: int) -> _Scan:
    """Find the separators outside quotes, chunk by chunk so that temporaries stay small.

    A virtual separator before `begin` and one after an unterminated last line make every line
    "the bytes between two separators", with no special cases. Quotes pair up in order, and
    separators between the quotes of a pair are text; `inside` carries that across chunks.
    """
    dtype = np.uint32 if len(array) < (1 << 32) - 2 else np.int64
    # Upper bounds from bytes.count; pages of the unused tails are never touched.
    field_starts = np.empty(data.count(b",") + data.count(b"\n") + 2, dtype)
    newlines = np.empty(data.count(b"\n"), np.int64)
    quotes = np.empty(data.count(b'"'), np.int64)
    field_starts[0] = begin
    count, newline_count, quote_count, inside = 1, 0, 0, False
    for offset in range(0, len(array), _CHUNK):
        chunk = array[offset : offset + _CHUNK]
        found = np.flatnonzero((chunk == _COMMA) | (chunk == _NEWLINE) | (chunk == _QUOTE))
        kind = chunk[found]
        is_quote = kind == _QUOTE
        chunk_quotes = found[is_quote]
        separators = found[~is_quote]
        newline_positions = found[kind == _NEWLINE]
        if inside or len(chunk_quotes):
            # A separator is text when an odd number of quotes (counting one still open from
            # earlier chunks as a quote at -1) come before it.
            edges = np.concatenate(([-1], chunk_quotes)) if inside else chunk_quotes
            separators = separators[np.searchsorted(edges, separators) % 2 == 0]
            inside = len(edges) % 2 == 1
        field_starts[count : count + len(separators)] = separators + (offset + 1)
        count += len(separators)
        newlines[newline_count : newline_count + len(newline_positions)] = (
            newline_positions + offset
        )
        newline_count += len(newline_positions)
        quotes[quote_count : quote_count + len(chunk_quotes)] = chunk_quotes + offset
        quote_count += len(chunk_quotes)
    if len(array) and array[-1] != _NEWLINE:
        field_starts[count] = len(array) + 1
        count += 1
    return _Scan(field_starts[:count], newlines, quotes, inside)


def _words(array: np.ndarray) -> np.ndarray:
    """A read-only view: element i is the little-endian 8-byte word at byte offset i."""
    return np.ndarray((max(len(array) - 7, 0),), "<u8", array, 0, (1,))


def span_hash(array: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """64-bit hash of each byte span, eight bytes at a time (equal spans hash alike)."""
    words = _words(array)
    lengths = end - start
    result = lengths.astype(np.uint64) * _GOLDEN
    if not len(words):
        return result
    for at in range(0, int(lengths.max(initial=0)), 8):
        offsets = start + at
        clamped = np.minimum(offsets, len(words) - 1)
        word = words[clamped] >> ((offsets - clamped) * 8).astype(np.uint64)
        remaining = np.clip(lengths - at, 0, 8).astype(np.uint64)
        word &= np.where(
            remaining >= 8, _ALL_ONES, (np.uint64(1) << remaining * np.uint64(8)) - np.uint64(1)
        )
        result = (result ^ word) * _GOLDEN
        result ^= result >> np.uint64(29)
    return result


class _Parser:
    def __init__(self, path: Path, data: bytes, today: int, expired_is_error: bool):
        self.path = path
        self.data = data
        self.array = np.frombuffer(data, np.uint8)
        self.today = today
        self.expired_is_error = expired_is_error
        self.result = _empty(path, data)
        self.newlines = np.zeros(0, np.int64)

    # -- problems ----------------------------------------------------------------------------

    def _report(self, offsets: np.ndarray, field_name: str, reason) -> None:
        """One problem per offset (of a line start or a byte); `reason` may be a function of it."""
        self.result.problem_count += len(offsets)
        shown = offsets[: max(0, MAX_PROBLEMS_KEPT - len(self.result.problems))]
        lines = np.searchsorted(self.newlines, shown) + 1
        for offset, line in zip(shown.tolist(), lines.tolist(), strict=True):
            text = reason(offset) if callable(reason) else reason
            self.result.problems.append(Problem(self.path, line, field_name, text))

    def _text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", "replace")

    # -- splitting ---------------------------------------------------------------------------

    def parse(self) -> ParsedFile:
        if not self._utf8():
            return self.result
        if not self.data or self.data.isspace():
            self._header_problem(f"the file is empty; its first line must be {','.join(HEADER)}")
            return self.result
        scan = _scan(self.data, self.array, begin=3 if self.data.startswith(b"\xef\xbb\xbf") else 0)
        self.newlines = scan.newlines
        if scan.unbalanced:
            self._report_unbalanced(scan.quotes)
            return self.result
        starts = scan.field_starts
        unterminated = not self.data.endswith(b"\n")
        is_end = np.zeros(len(starts), bool)
        for block in range(1, len(starts), _CHUNK):
            before = np.minimum(starts[block : block + _CHUNK] - 1, len(self.data) - 1)
            is_end[block : block + _CHUNK] = self.array[before] == _NEWLINE
        is_end[-1] = True
        line_ends = np.flatnonzero(is_end)
        del is_end
        unquoted_newlines = len(line_ends) - unterminated
        if not self._header(int(starts[0]), int(starts[line_ends[0]]) - 1):
            return self.result
        previous, line_ends = line_ends[:-1], line_ends[1:]
        line_numbers = np.arange(2, len(line_ends) + 2, dtype=np.int32)
        field_counts = line_ends - previous
        wrong = field_counts != len(HEADER)
        if wrong.any():
            self._report_field_counts(
                starts, previous[wrong], line_ends[wrong], field_counts[wrong]
            )
            line_ends, line_numbers = line_ends[~wrong], line_numbers[~wrong]
        del previous, field_counts, wrong
        row_start = starts[line_ends - len(HEADER)].astype(np.int64)
        if len(self.newlines) != unquoted_newlines:
            line_numbers = (np.searchsorted(self.newlines, row_start) + 1).astype(np.int32)
        self._check_quotes(scan.quotes)
        del scan
        self._columns(starts, line_ends, row_start, line_numbers)
        return self.result

    def _utf8(self) -> bool:
        if not len(self.array) or int(self.array.max()) < 128:
            return True
        try:
            self.data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = self.data.count(b"\n", 0, error.start) + 1
            self.result.problems.append(Problem(self.path, line, "file", "not valid UTF-8 text"))
            self.result.problem_count = 1
            return False
        return True

    def _report_unbalanced(self, quotes: np.ndarray) -> None:
        lines = np.searchsorted(self.newlines, quotes)
        per_line = np.bincount(lines)
        first_odd = int(np.flatnonzero(per_line % 2)[0]) if (per_line % 2).any() else int(lines[-1])
        self.result.problems.append(
            Problem(self.path, first_odd + 1, "line", "a quoted field is never closed")
        )
        self.result.problem_count += 1

    def _report_field_counts(
        self, starts: np.ndarray, previous: np.ndarray, ends: np.ndarray, counts: np.ndarray
    ) -> None:
        first, last = self._trim(
            starts[previous].astype(np.int64), starts[ends].astype(np.int64) - 1, (_SPACE, _CR)
        )
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

    def _header(self, start: int, end: int) -> bool:
        names = tuple(name.strip() for name in self._text(start, end).rstrip("\r").split(","))
        if names == HEADER:
            return True
        self._header_problem(f"expected {','.join(HEADER)!r}, found {','.join(names)!r}")
        return False

    def _header_problem(self, reason: str) -> None:
        self.result.problems.append(Problem(self.path, 1, "header", reason))
        self.result.problem_count += 1

    def _trim(
        self, starts: np.ndarray, ends: np.ndarray, blanks: tuple[int, ...] = (_SPACE,)
    ) -> tuple[np.ndarray, np.ndarray]:
        array, last = self.array, max(len(self.array) - 1, 0)
        starts, ends = starts.copy(), ends.copy()
        while (lead := (starts < ends) & _any_of(array[np.minimum(starts, last)], blanks)).any():
            starts += lead
        while (trail := (ends > starts) & _any_of(array[np.maximum(ends - 1, 0)], blanks)).any():
            ends -= trail
        return starts, ends

    # -- columns -----------------------------------------------------------------------------

    def _span(
        self, field_starts: np.ndarray, line_ends: np.ndarray, name: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Field `name` of the lines ending at `line_ends`, without spaces and enclosing quotes."""
        width, k, last = len(HEADER), HEADER.index(name), len(self.array) - 1
        first = field_starts[line_ends - width + k].astype(np.int64)
        end = field_starts[line_ends - width + k + 1].astype(np.int64) - 1
        first, end = self._trim(first, end, (_SPACE, _CR) if k == width - 1 else (_SPACE,))
        quoted = (end - first >= 2) & (self.array[np.minimum(first, last)] == _QUOTE)
        quoted &= self.array[np.maximum(end - 1, 0)] == _QUOTE
        if not quoted.any():
            return first, end
        return self._trim(first + quoted, end - quoted)

    def _columns(
        self,
        field_starts: np.ndarray,
        line_ends: np.ndarray,
        row_start: np.ndarray,
        line_numbers: np.ndarray,
    ) -> None:
        """Check and convert every field. Rows go in blocks so temporaries stay small and hot."""
        count = len(line_ends)
        codes = np.empty(count, np.int64)
        id_hash = np.empty(count, np.uint64)
        hashes = {name: np.empty(count, np.uint64) for name in ("markers", "added", "expires")}
        for block in range(0, count, _BLOCK_ROWS):
            rows = slice(block, block + _BLOCK_ROWS)
            ends, offsets = line_ends[rows], row_start[rows]

            id_start, id_end = self._span(field_starts, ends, "entry_id")
            self._report(offsets[id_start >= id_end], "entry_id", "missing entry id")
            too_long = id_end - id_start > MAX_ENTRY_ID_CHARS
            self._report(
                offsets[too_long], "entry_id", f"longer than {MAX_ENTRY_ID_CHARS} characters"
            )
            id_hash[rows] = span_hash(self.array, id_start, id_end)
            codes[rows] = self._vrms(*self._span(field_starts, ends, "vrm"), offsets)
            for name, reason in _REQUIRED_TEXT.items():
                first, end = self._span(field_starts, ends, name)
                self._report(offsets[first >= end], name, reason)
            for name, column in hashes.items():
                column[rows] = span_hash(self.array, *self._span(field_starts, ends, name))

        def text_of(name: str) -> Callable[[int], str]:
            def text(row: int) -> str:
                (first,), (end,) = self._span(field_starts, line_ends[row : row + 1], name)
                return self._text(int(first), int(end))

            return text

        markers = self._by_value(
            hashes.pop("markers"), row_start, "markers", text_of("markers"), _parse_markers
        ).astype(np.uint8)
        added = self._by_value(
            hashes.pop("added"), row_start, "added", text_of("added"), _parse_date
        ).astype(np.int32)
        expires = self._by_value(
            hashes.pop("expires"), row_start, "expires", text_of("expires"), _parse_date
        ).astype(np.int32)

        known = (added >= 0) & (expires >= 0)
        self._report(
            row_start[known & (added > self.today)], "added", "date added is in the future"
        )
        order_wrong = known & (expires <= added)
        self._report(row_start[order_wrong], "expires", "must be after the date added")
        past = known & ~order_wrong & (expires < self.today)
        if self.expired_is_error:
            self._report(
                row_start[past],
                "expires",
                lambda offset: (
                    "past date: expired on "
                    f"{from_days(expires[np.searchsorted(row_start, offset)])}"
                ),
            )
        elif past.any():
            self.result.expired = int(np.count_nonzero(past))
            keep = ~past
            row_start, line_numbers, codes, markers = (
                row_start[keep],
                line_numbers[keep],
                codes[keep],
                markers[keep],
            )
            expires, id_hash = expires[keep], id_hash[keep]
        result = self.result
        result.row_start = row_start
        result.lines = line_numbers
        result.codes = codes
        result.markers = markers
        result.expires = expires
        result.id_hash = id_hash

    def _check_quotes(self, quotes: np.ndarray) -> None:
        """Quotes must enclose whole fields, with each quote inside a field written twice.

        Quotes pair up in order: an odd-numbered quote directly followed by another is an escaped
        quote; otherwise it closes a field, and the next quote opens one. An opening quote must
        start a field and a closing quote end one (spaces around them aside).
        """
        if not len(quotes):
            return
        odd, even = quotes[1::2], quotes[2::2]
        escaped = np.zeros(len(odd), bool)
        escaped[: len(even)] = even == odd[: len(even)] + 1
        openings = np.concatenate((quotes[:1], even[~escaped[: len(even)]]))
        closings = odd[~escaped]
        begin = 3 if self.data.startswith(b"\xef\xbb\xbf") else 0
        before = self._next_non_space(openings - 1, -1, stop=begin - 1)
        after = self._next_non_space(closings + 1, 1, stop=len(self.array))
        edge_before = (before < begin) | _any_of(
            self.array[np.maximum(before, 0)], (_COMMA, _NEWLINE)
        )
        after_byte = self.array[np.minimum(after, len(self.array) - 1)]
        edge_after = (after >= len(self.array)) | _any_of(after_byte, (_COMMA, _NEWLINE, _CR))
        stray = np.sort(np.concatenate((openings[~edge_before], closings[~edge_after])))
        self._report(
            stray,
            "line",
            "stray quote: a field containing quotes must be entirely enclosed in quotes, "
            'with each quote inside it written twice ("")',
        )

    def _next_non_space(self, offsets: np.ndarray, step: int, stop: int) -> np.ndarray:
        """From each offset, moving by `step`, the first offset not holding a space (or `stop`)."""
        offsets = offsets.copy()
        last = len(self.array) - 1
        while True:
            inside = (offsets - stop) * step < 0
            moving = inside & (self.array[np.clip(offsets, 0, last)] == _SPACE)
            if not moving.any():
                return offsets
            offsets += moving * step

    def _vrms(self, starts: np.ndarray, ends: np.ndarray, row_start: np.ndarray) -> np.ndarray:
        """Exact codes (`vrm_code`) of the normalised VRMs: upper case, spaces removed."""
        lengths = ends - starts
        last = len(self.array) - 1
        codes = np.ones(len(starts), np.int64)
        count = np.zeros(len(starts), np.int64)
        bad_char = np.zeros(len(starts), bool)
        for j in range(int(np.minimum(lengths, MAX_VRM_FIELD_BYTES).max(initial=0))):
            active = j < lengths
            char = self.array[np.minimum(starts + j, last)]
            char = char - ((char >= 97) & (char <= 122)).astype(np.uint8) * np.uint8(32)
            digit = (char >= 48) & (char <= 57)
            letter = (char >= 65) & (char <= 90)
            bad_char |= active & ~(digit | letter | (char == _SPACE))
            used = active & (digit | letter)
            count += used
            value = char.astype(np.int64) - np.where(digit, 48, 55)
            codes = np.where(used & (count <= MAX_VRM_CHARS), codes * 36 + value, codes)
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

    def _bad_vrm_reason(
        self, offset: int, starts: np.ndarray, ends: np.ndarray, row_start: np.ndarray
    ) -> str:
        index = int(np.searchsorted(row_start, offset))
        text = self._text(int(starts[index]), int(ends[index]))
        bad = next(c for c in text if not (c.isascii() and (c.isalnum() or c == " ")))
        return f"bad character {bad!r} in {text!r}: only letters, digits and spaces"

    def _by_value(
        self,
        hashes: np.ndarray,
        row_start: np.ndarray,
        name: str,
        text_of: Callable[[int], str],
        parse: Callable[[str], tuple[int, str | None]],
    ) -> np.ndarray:
        """Convert a column with few distinct values (markers, dates) by parsing each value once.

        Rows are grouped by the hash of their bytes; `parse` turns the text of one row per group
        into (value, None) or (anything, reason it is wrong), and every row of a group shares it.
        """
        ordered = np.sort(hashes)
        distinct = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
        del ordered
        inverse = np.empty(len(hashes), np.int32)
        for block in range(0, len(hashes), _BLOCK_ROWS):
            inverse[block : block + _BLOCK_ROWS] = np.searchsorted(
                distinct, hashes[block : block + _BLOCK_ROWS]
            )
        first = np.empty(len(distinct), np.int64)
        first[inverse[::-1]] = np.arange(len(hashes) - 1, -1, -1, dtype=np.int32)
        values = np.zeros(len(distinct), np.int64)
        reasons: list[str | None] = []
        for index, row in enumerate(first.tolist()):
            values[index], reason = parse(text_of(row))
            reasons.append(reason)
        result = values[inverse]
        failing = np.array([reason is not None for reason in reasons], bool)
        if failing.any():
            bad = failing[inverse]
            self._report(
                row_start[bad],
                name,
                lambda offset: reasons[inverse[np.searchsorted(row_start, offset)]],
            )
            result[bad] = -1
        return result


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


def _parse_date(text: str) -> tuple[int, str | None]:
    """Days since 1970 of a YYYY-MM-DD date, or the reason it is not one."""
    if not text:
        return -1, "missing date"
    if len(text) == 10 and text[4] == text[7] == "-" and text.replace("-", "").isdigit():
        try:
            return days(dt.date.fromisoformat(text)), None
        except ValueError:
            pass
    return -1, f"bad date {text!r}: expected a real date written YYYY-MM-DD"
