"""Plate tracking: many frames of one vehicle become one fused read and at most one alert.

Each camera has a `PlateTracker`. Detections are linked into tracks by box overlap with the
track's predicted box (where its recent sightings say it is now), or, for fast movers whose
boxes no longer overlap, by centre distance measured in plate heights, allowing more the longer
the track has gone unseen. OCR runs on only a few crops of each track: the first sighting, then
crops clearly larger or sharper than any legible read so far, and, while the reads do not yet
agree, every other frame, until `reads_per_track` legible reads are in. Then, while they still
disagree, a crop clearly better than the poorest crop read is read too, and its read replaces
that one: an approaching plate first read while barely legible is read again as it comes near,
and the far reads' guesses ("LP35BKJ", "LP31VRK" for LP01YRK) no longer outvote it. Reads that
come back illegible (a plate still too far to read) do not use up the budget, only a larger
budget of attempts; until a read is legible, the next crop read is one clearly better than any
read yet, or one a few frames on, and once the attempts are spent only a crop clearly better
than any read yet is read. Crop quality is the box's width times its sharpness: a far plate's
box is padded taller than its characters, so its width says better how near it is. A box that
reaches the edge of the searched picture (the frame, or the region of interest's bounding
rectangle) is tracked but not read: the plate may go on beyond the edge, and a read of part of it
("LJE0L") can fit a UK format and match another vehicle's hotlist entry.
The reads are fused by per-character voting.

When a track's reads are emitted: as soon as `early_emit_reads` reads agree and outnumber those
that disagree three to one (a read of part of the plate, or of the plate with look-alikes
swapped, does not disagree), or two agree, each at least 95 % sure and fitting a UK format, and
none disagrees, or its read budget is spent and no better crop is coming (no crop seen in the
last few sightings is as good as the poorest read), while the vehicle is often still in view:
this is what keeps capture-to-alert latency low. Otherwise (and always with `early_emit_reads:
0`) when the track has been unseen for `max_gap_s`. A track whose fused text equals one this camera
emitted within `repeat_window_s` is suppressed: that is the same vehicle, its track broken by
missed detections. So is a track whose text is part of, or a look-alike of, one this camera
emitted while that plate was in view (a plate entering the picture tracked on its own for a frame
or two, read "NIJ431" beside "NIJ4318"; a box that lost its track for a frame, read "DNOLEVT"
beside "DN01EVT"): it could otherwise match the hotlist entry as a possible misread and alert a
second time for one vehicle. A track seen in fewer than `min_sightings` frames is not emitted,
nor one whose read is three characters or fewer unless it is sure.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from edge.calibration import Calibration, RegionOfInterest
from edge.config import TrackingConfig
from edge.hotlist.index import CLASS_TRANSLATION
from edge.plates import correct, uk_format
from edge.types import Box, Detection, Frame, PlateRead, VehicleRead, box_intersection, box_iou

logger = logging.getLogger(__name__)

_MAX_JUMP_HEIGHTS = (3.0, 1.0, 8.0)
"""Largest centre distance, in plate heights, that links a detection with no overlap: a base,
a growth per frame since the track was last seen (plates near the camera move fast, and
detection may not run on every frame), and a cap."""
_CONTAINED = 0.8
"""A detection box this much inside the predicted box (or around it) continues the track."""
_MAX_SIZE_RATIO = (1.6, 0.16, 2.2)
"""Largest change of plate height between linked sightings: base, growth per frame, cap."""
_WINDOW_ROOM = (0.75, 0.25, 2.0)
"""Room around a track's predicted box searched for its plate, in plate widths on each side
(twice that in plate heights above and below): a base, a growth per frame unseen, and a cap."""
_JUST_SEEN_FRAMES = 3
"""A plate seen within this many frames is expected in the next: not finding it is a miss."""
_WHOLE_PLATE_WIDTH = 0.6
"""A detection continuing a track at least this fraction of its predicted width is its plate
found; the fragments of a plate the text detector finds in a small input instead of it are
narrower."""
_CLEARLY_BETTER = 1.15
"""A crop is worth another read when its quality beats every crop read so far by this factor."""
_GOOD_ENOUGH = 0.8
"""While reads disagree, crops at least this fraction of the best quality are read too."""
_READ_SPACING_FRAMES = 2
_STALE_SIGHTINGS = 4
"""A track seen this many times since its last read, none of those crops worth reading, whose
reads agree (one short of `early_emit_reads`) on a UK plate, is emitted then: no later read is
coming (a receding plate's crops only shrink), and waiting `max_gap_s` for it to end would only
delay the same read by a second. Part-reads, which fit no UK format, still wait, so the whole
plate, read alongside, is emitted first and they are suppressed. A track with one read, or
reads that disagree, seen this many times since its last read, none of those crops worth
reading, reads its next crop anyway (within its read budget): at night an approaching plate's
nearer crops are blurred by its motion, and the firearms pass DE01SOM, read once at 17 px in its
first frame, was never read again and waited for its track to end: its alert came 920 ms after
its evidence frame, against 40-100 ms for the others."""
_OUTVOTING = 3
"""Agreeing reads settle a track when they outnumber the reads against them this many to one."""
_CONFIDENT = 0.95
_SHORT_READ = 3
"""A fused read this short is emitted only when `_CONFIDENT`: a plate this short is rare (a
dateless "A1"), and an unsure read of a few characters is most often something else (a road
stripe on the 1080p clip, boxed as a two-line plate and read "G2" three times at 0.51-0.53)."""
_CONFIDENT_READS = 2
"""This many agreeing reads settle a track when each is at least `_CONFIDENT` sure and fits a
UK format: a third read of a receding plate comes from a smaller crop 2 frames later, and waiting
for it put 80-160 ms of clip into the alert's latency (1080p clips in real time, three A/B pairs
on 2026-12-04: p99 256/214/163 -> 182/140/159 ms on the 20 s clip, 930/426 -> 202/278 ms on the
60 s clip; every pass read right on both and on the day+night suite)."""
_ATTEMPTS_PER_READ = 4
"""Reads a track may request, illegible ones included, per read of its budget."""
_ILLEGIBLE_RETRY_FRAMES = 6
"""Until a track's plate is read, its next crop is read when it is `_CLEARLY_BETTER` than any
read yet (the plate coming nearer), or this many frames after the last request, not every other
frame. Once its attempts are spent, a track still reads a crop clearly better than any read, and
is not emitted before `_STALE_SIGHTINGS` sightings bring none. The demo's firearms pass AX00RBR,
found 23 px wide, had 7 illegible reads and one "0REH" by frame 116, all 8 attempts of a 2-read
budget, and was emitted as "0REH"; its first legible crop came at frame 124."""
_RECENT_SIGHTINGS = 3
_PATH_SIGHTINGS = 100
"""Sightings (the latest) over which a track's direction is judged: about 4 s at 25 fps."""
_DIRECTION_MIN_SIGHTINGS = 5
"""Sightings of the whole plate needed to judge its direction: over fewer, one box found in part
sways the trend (a receding plate's 3 boxes, 50/46/45 px tall after one of 27 px, read as
approaching)."""
_DIRECTION_MIN_SHIFT_HEIGHTS = 0.5
_DIRECTION_MIN_GROWTH = 1.15
_MAX_ALTERNATIVES = 5


@dataclass(slots=True)
class _Reading:
    read: PlateRead
    frame: Frame
    """Kept by reference (frames are never modified) until the track ends."""
    detection: Detection
    quality: float


@dataclass(slots=True)
class _Track:
    track_id: int
    first_seen: float
    last_seen: float
    """Scene times (`Frame.scene_time`) of the first and the latest sighting."""
    first_captured_at: float
    last_captured_at: float
    path: collections.deque[tuple[int, Box]] = field(
        default_factory=lambda: collections.deque(maxlen=_PATH_SIGHTINGS)
    )
    recent: collections.deque[tuple[int, Box]] = field(
        default_factory=lambda: collections.deque(maxlen=_RECENT_SIGHTINGS)
    )
    """The last few sightings (frame index, box): motion and size are judged over these, so
    one jittery detection box neither breaks the track nor throws its prediction off. Motion is
    per frame, not per second: a file replayed as fast as possible has bursty capture times."""
    frames_seen: int = 0
    reads_requested: int = 0
    reads_answered: int = 0
    best_quality_read: float = 0.0
    """The best crop quality among the legible reads."""
    last_request_index: int = -(10**9)
    best_quality_requested: float = 0.0
    """The best quality of the crops read, legible or not."""
    sightings_since_request: int = 0
    best_quality_since_request: float = 0.0
    """The best quality of the whole-plate crops seen since the last read request."""
    readings: list[_Reading] = field(default_factory=list)
    fused_text: str | None = None
    """Set once the track's read is emitted (or suppressed as a repeat)."""

    def sighted(self, frame: Frame, box: Box, whole_quality: float | None) -> None:
        """Seen in `frame` at `box`; `whole_quality` is its crop's quality, None when the box is
        cut by the edge of the searched picture."""
        self.last_seen = frame.scene_time
        self.last_captured_at = frame.captured_at
        self.frames_seen += 1
        self.sightings_since_request += 1
        if whole_quality is not None:
            # A plate half out of the picture grows as it comes in, whichever way it goes.
            self.path.append((frame.index, box))
            self.best_quality_since_request = max(self.best_quality_since_request, whole_quality)
        self.recent.append((frame.index, box))

    def read_requested(self, frame_index: int, quality: float) -> None:
        self.reads_requested += 1
        self.best_quality_requested = max(self.best_quality_requested, quality)
        self.last_request_index = frame_index
        self.sightings_since_request = 0
        self.best_quality_since_request = 0.0

    def predicted_box(self, at: int) -> Box:
        """Where the plate should be in frame `at`: the last centre moved by the recent
        velocity, with the recent median size."""
        (first_at, first_box), (last_at, last_box) = self.recent[0], self.recent[-1]
        (x0, y0), (x1, y1) = _centre(first_box), _centre(last_box)
        span = last_at - first_at
        vx, vy = ((x1 - x0) / span, (y1 - y0) / span) if span > 0 else (0.0, 0.0)
        width, height = np.median([box[2:] for _, box in self.recent], axis=0)
        cx, cy = x1 + vx * (at - last_at), y1 + vy * (at - last_at)
        return (round(cx - width / 2), round(cy - height / 2), round(width), round(height))


class PlateTracker:
    """Tracks one camera's plates across frames and fuses each track's reads."""

    def __init__(self, camera_id: str, config: TrackingConfig, calibration: Calibration):
        self.camera_id = camera_id
        self.config = config
        self.calibration = calibration
        self.roi = RegionOfInterest(calibration)
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._recent_texts: dict[str, float] = {}
        """Fused text -> last sighting of the latest pass emitted (or suppressed) with it."""

    def update(self, frame: Frame, detections: Sequence[Detection]) -> list[tuple[int, Detection]]:
        """Link this frame's detections to tracks; the (track id, detection) pairs to read now."""
        to_read = []
        for track, detection in self._associate(frame, detections):
            cut = self.roi.cuts(detection.box, frame.image.shape)
            quality = _crop_quality(frame.image, detection)
            track.sighted(frame, detection.box, None if cut else quality)
            if track.fused_text is not None:  # still in view after its read was emitted
                self._recent_texts[track.fused_text] = frame.scene_time
            if not cut and self._worth_reading(track, frame.index, quality):
                track.read_requested(frame.index, quality)
                to_read.append((track.track_id, detection))
                self._trace(
                    track,
                    "frame %d: read requested, box %s, crop quality %.0f",
                    frame.index,
                    detection.box,
                    quality,
                )
        return to_read

    def search_windows(self, frame_index: int) -> list[Box]:
        """Where the open tracks' plates should be in frame `frame_index`."""
        return [_search_window(track, frame_index) for track in self._tracks.values()]

    def windows_missed(self, frame_index: int, detections: Sequence[Detection]) -> list[Box]:
        """The search windows of the plates read and seen in the last `_JUST_SEEN_FRAMES`
        frames that none of frame `frame_index`'s `detections` continues as a whole plate: most
        likely there, and not found or found only in part."""
        missed = []
        for track in self._tracks.values():
            elapsed = frame_index - track.recent[-1][0]
            if not track.readings or elapsed > _JUST_SEEN_FRAMES:
                continue
            predicted = track.predicted_box(frame_index)
            if not any(
                self._similarity(predicted, d.box, elapsed) > 0
                and d.box[2] >= _WHOLE_PLATE_WIDTH * predicted[2]
                for d in detections
            ):
                missed.append(_search_window(track, frame_index))
        return missed

    def add_read(
        self, track_id: int, frame: Frame, detection: Detection, read: PlateRead | None
    ) -> None:
        """The reader's result for a pair `update` returned (None: nothing legible)."""
        track = self._tracks.get(track_id)
        if track is None:
            return
        track.reads_answered += 1
        if read is None or not read.text:
            self._trace(track, "frame %d: nothing legible", frame.index)
            return
        quality = _crop_quality(frame.image, detection)
        self._trace(
            track,
            "frame %d: read %s, confidence %.2f, crop quality %.0f",
            frame.index,
            read.text,
            read.confidence,
            quality,
        )
        track.best_quality_read = max(track.best_quality_read, quality)
        track.readings.append(_Reading(read, frame, detection, quality))
        if len(track.readings) > self.config.reads_per_track:
            track.readings.remove(min(track.readings, key=lambda reading: reading.quality))

    def finished(self, now: float) -> list[VehicleRead]:
        """Reads of passes that ended (unseen for `max_gap_s` before `now`, a scene time) or are
        settled."""
        ready = []
        for track in list(self._tracks.values()):
            ended = now - track.last_seen > self.config.max_gap_s
            if ended or self._settled(track):
                vehicle = self._emit(track)
                if vehicle is not None:
                    ready.append(vehicle)
            if ended:
                del self._tracks[track.track_id]
        self._forget_old_texts(now)
        return ready

    def flush(self) -> list[VehicleRead]:
        """End of stream: the reads of every open track."""
        vehicles = [v for v in map(self._emit, self._tracks.values()) if v is not None]
        self._tracks.clear()
        return vehicles

    # Association.

    def _associate(
        self, frame: Frame, detections: Sequence[Detection]
    ) -> list[tuple[_Track, Detection]]:
        """Greedy one-to-one matching by similarity; unmatched detections start new tracks."""
        candidates = []
        for track in self._tracks.values():
            predicted = track.predicted_box(frame.index)
            # Allowances grow while a plate goes unseen (near the camera it moves fast, and
            # detection skips frames); not for a track never read as a plate: road markings and
            # signs that the detector fires on now and then would catch the next plate near them.
            elapsed = frame.index - track.recent[-1][0] if track.readings else 0
            for d, detection in enumerate(detections):
                similarity = self._similarity(predicted, detection.box, elapsed)
                if similarity > 0:
                    candidates.append((similarity, track.track_id, d))
        pairs = []
        used_tracks: set[int] = set()
        used_detections: set[int] = set()
        for _, track_id, d in sorted(candidates, reverse=True):
            if track_id in used_tracks or d in used_detections:
                continue
            used_tracks.add(track_id)
            used_detections.add(d)
            pairs.append((self._tracks[track_id], detections[d]))
        for d, detection in enumerate(detections):
            if d not in used_detections:
                pairs.append((self._start(frame), detection))
        return pairs

    def _similarity(self, predicted: Box, box: Box, elapsed: int) -> float:
        """Above 1 for overlapping boxes (1 + IoU), in (0, 1) for near ones, 0 for no link."""
        overlap = box_iou(predicted, box)
        if overlap >= self.config.iou_threshold:
            return 1.0 + overlap
        if _contained(predicted, box):  # the detector clipped the plate for a frame, or grew it
            return 1.0 + overlap
        heights = sorted((predicted[3], box[3]))
        if heights[0] <= 0 or heights[1] / heights[0] > _allowance(_MAX_SIZE_RATIO, elapsed):
            return 0.0
        (px, py), (bx, by) = _centre(predicted), _centre(box)
        distance = float(np.hypot(px - bx, py - by)) / (sum(heights) / 2)
        return max(0.0, 1.0 - distance / _allowance(_MAX_JUMP_HEIGHTS, elapsed))

    def _start(self, frame: Frame) -> _Track:
        track = _Track(
            track_id=self._next_id,
            first_seen=frame.scene_time,
            last_seen=frame.scene_time,
            first_captured_at=frame.captured_at,
            last_captured_at=frame.captured_at,
        )
        self._tracks[track.track_id] = track
        self._next_id += 1
        self._trace(track, "frame %d: started", frame.index)
        return track

    # Reading and fusion.

    def _worth_reading(self, track: _Track, frame_index: int, quality: float) -> bool:
        """Its first sighting; then a crop clearly better than any legible read so far, or,
        while the reads do not yet agree, one nearly as good and spaced from the last request
        (once the read budget is in, one clearly better than the poorest crop read, whose read
        it replaces). Until a read is legible (the plate still far, blurred, or no plate at
        all), a crop clearly better than any read yet or `_ILLEGIBLE_RETRY_FRAMES` on: illegible
        reads spend attempts, not the read budget, so a plate first seen too small to read is
        still read once it comes near. Past its attempts, only a crop clearly better than any
        read yet."""
        if track.fused_text is not None:
            return False
        if track.reads_requested == 0:
            return True
        if track.reads_requested >= _ATTEMPTS_PER_READ * self.config.reads_per_track:
            # Past its attempts, only a crop better than any read: each must beat the last by
            # a factor, so these are few, and an approaching plate still gets its near crops read.
            return quality > _CLEARLY_BETTER * track.best_quality_requested
        spaced = frame_index - track.last_request_index >= _READ_SPACING_FRAMES
        if not track.readings:
            return spaced and (
                quality > _CLEARLY_BETTER * track.best_quality_requested
                or frame_index - track.last_request_index >= _ILLEGIBLE_RETRY_FRAMES
            )
        if quality > _CLEARLY_BETTER * track.best_quality_read:
            return True
        pending = track.reads_requested - track.reads_answered
        if len(track.readings) + pending >= self.config.reads_per_track:
            poorest = min(reading.quality for reading in track.readings)
            return quality > _CLEARLY_BETTER * poorest and spaced and not self._agreed(track)
        if self._agreed(track):
            return False
        if track.sightings_since_request >= _STALE_SIGHTINGS and self._unsettled(track):
            return spaced  # a poorer crop's read beats waiting for the track to end
        return spaced and quality >= _GOOD_ENOUGH * track.best_quality_read

    def _unsettled(self, track: _Track) -> bool:
        """One read, or reads that disagree: nothing to emit before the track ends."""
        return len(track.readings) == 1 or self._agreement(track)[2] > 0

    def _agreed(self, track: _Track) -> bool:
        """Enough reads for an early emit: `early_emit_reads` giving one text and outnumbering
        those against it `_OUTVOTING` to one (a single read of a far crop, "OP01FMH" beside four
        "OP01FNH", no longer holds the pass back until it ends), or two confident ones and none
        against them."""
        needed = self.config.early_emit_reads
        if needed == 0:
            return False
        text, agreeing, against = self._agreement(track)
        if agreeing >= needed and agreeing >= _OUTVOTING * against:
            return True
        confident = [
            r.read
            for r in track.readings
            if r.read.text == text and r.read.plate_format and r.read.confidence >= _CONFIDENT
        ]
        return not against and len(confident) >= min(needed, _CONFIDENT_READS)

    def _agreement(self, track: _Track) -> tuple[str | None, int, int]:
        """The track's most common read, how many reads give it, and how many disagree with it.
        Reads of part of it (the plate entering the picture, read "KPV" before "PO00KPV") and
        reads of it with look-alikes swapped (read "PO0OKPV" where the reader was unsure) do not
        disagree."""
        counts = collections.Counter(reading.read.text for reading in track.readings)
        if not counts:
            return None, 0, 0
        text, agreeing = counts.most_common(1)[0]
        against = sum(
            count
            for other, count in counts.items()
            if not (other == text or _is_part_of(other, text) or _looks_alike(other, text))
        )
        return text, agreeing, against

    def _settled(self, track: _Track) -> bool:
        """Early emit: the reads agree, or the read budget is spent and no better crop is
        coming, or every attempt is spent, or no later crop is worth reading (see
        _STALE_SIGHTINGS)."""
        if track.fused_text is not None or not track.readings or not self.config.early_emit_reads:
            return False
        budget = self.config.reads_per_track
        if (
            track.reads_answered >= _ATTEMPTS_PER_READ * budget
            and track.sightings_since_request >= _STALE_SIGHTINGS
        ):
            return True
        if self._agreed(track) or self._stale(track):
            return True
        return (
            len(track.readings) >= budget
            and track.sightings_since_request >= _STALE_SIGHTINGS
            and track.best_quality_since_request  # no crop in sight better than one read
            <= min(reading.quality for reading in track.readings)
        )

    def _stale(self, track: _Track) -> bool:
        text, agreeing, against = self._agreement(track)
        return (
            not against
            and track.sightings_since_request >= _STALE_SIGHTINGS
            and track.reads_answered == track.reads_requested
            and agreeing >= max(1, self.config.early_emit_reads - 1)
            and any(r.read.text == text and r.read.plate_format for r in track.readings)
        )

    def _emit(self, track: _Track) -> VehicleRead | None:
        if track.fused_text is not None or not track.readings:
            return None
        if track.frames_seen < self.config.min_sightings and not self._agreed(track):
            self._trace(
                track,
                "seen in %d frame(s) only, its reads not agreeing: not emitted",
                track.frames_seen,
            )
            return None
        fused = fuse_reads([reading.read for reading in track.readings])
        track.fused_text = fused.text
        if len(fused.text) <= _SHORT_READ and fused.confidence < _CONFIDENT:
            self._trace(track, "read %s, short and unsure: not emitted", fused.text)
            return None
        previous = self._recent_texts.get(fused.text)
        self._recent_texts[fused.text] = max(previous or 0.0, track.last_seen)
        if previous is not None and track.first_seen - previous <= self.config.repeat_window_s:
            self._trace(track, "repeats %s: suppressed", fused.text)
            return None
        whole = self._read_alongside(fused.text, track.first_seen)
        if whole is not None:
            self._trace(
                track,
                "read %s, part or look-alike of %s read alongside it: suppressed",
                fused.text,
                whole,
            )
            return None
        best = max(
            track.readings,
            key=lambda r: (r.read.text == fused.text, r.read.confidence * r.quality),
        )
        x, y, w, h = best.detection.box
        image = best.frame.image
        crop = image[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)].copy()
        direction = self._direction(track)
        self._trace(
            track,
            "emitted %s from %d reads after %d sightings (best crop: frame %d), direction %s",
            fused.text,
            len(track.readings),
            track.frames_seen,
            best.frame.index,
            direction,
        )
        return VehicleRead(
            camera_id=self.camera_id,
            track_id=track.track_id,
            read=fused,
            captured_at=best.frame.captured_at,
            first_seen=track.first_captured_at,
            last_seen=track.last_captured_at,
            box=best.detection.box,
            plate_crop=crop,
            overview=image,
            direction=direction,
            frames_seen=track.frames_seen,
        )

    def _read_alongside(self, text: str, first_seen: float) -> str | None:
        """Another text emitted by this camera, still in view when (or within `max_gap_s`
        before) the track of `text` began, that `text` is part of or a look-alike of: the same
        plate, tracked on its own for a while (a plate entering the picture, or a box that lost
        its track at a gap) and read in part or with look-alikes swapped."""
        for other, last_seen in self._recent_texts.items():
            if (
                other != text
                and first_seen - last_seen <= self.config.max_gap_s
                and (_is_part_of(text, other) or _looks_alike(text, other))
            ):
                return other
        return None

    def _forget_old_texts(self, now: float) -> None:
        """Drop texts that can no longer suppress anything: older than the repeat window before
        the start of every open track (and of any track still to come)."""
        earliest = min((track.first_seen for track in self._tracks.values()), default=now)
        horizon = min(now, earliest) - self.config.repeat_window_s
        for text in [t for t, seen in self._recent_texts.items() if seen < horizon]:
            del self._recent_texts[text]

    def _trace(self, track: _Track, message: str, *args: object) -> None:
        """A debug record of one track's life (benchmarks/trace.py prints them per track)."""
        logger.debug(
            "camera %s: track %d: " + message,
            self.camera_id,
            track.track_id,
            *args,
            extra={"camera_id": self.camera_id, "track_id": track.track_id},
        )

    def _direction(self, track: _Track) -> str | None:
        """'towards' or 'away' from the plate's motion along the calibrated lane direction, or
        (uncalibrated) from the plate growing or shrinking; None when it moved too little. The
        trend is a Theil-Sen fit over the track's latest sightings: the median of the slopes
        between every two, which a third of boxes found too small or too large (a plate found in
        part, or with its surround) does not sway."""
        if len(track.path) < _DIRECTION_MIN_SIGHTINGS:
            return None
        frames = np.array([index for index, _ in track.path], np.float64)
        boxes = np.array([box for _, box in track.path], np.float64)
        span = frames[-1] - frames[0]
        if span <= 0:
            return None
        towards = self.calibration.towards
        if towards is not None:
            along = (boxes[:, :2] + boxes[:, 2:] / 2) @ np.asarray(towards, np.float64)
            shift = _median_slope(frames, along) * span
            if abs(shift) < _DIRECTION_MIN_SHIFT_HEIGHTS * float(np.median(boxes[:, 3])):
                return None
            return "towards" if shift > 0 else "away"
        growth = float(np.exp(_median_slope(frames, np.log(np.maximum(boxes[:, 3], 1.0))) * span))
        if growth >= _DIRECTION_MIN_GROWTH:
            return "towards"
        if growth <= 1 / _DIRECTION_MIN_GROWTH:
            return "away"
        return None


def fuse_reads(reads: Sequence[PlateRead]) -> PlateRead:
    """One read from several reads of the same plate, by per-character voting.

    The length is voted first (each read weighs its confidence); reads of the winning length
    then vote per position with their character confidences. A position's confidence is the
    winner's summed confidence over the number of voters, so unanimous votes keep the readers'
    confidence and split votes lower it; the read's confidence is the weakest position's, scaled
    by the share of the length vote. Runner-up characters and reads of other lengths become the
    alternatives (for possible-misread hotlist matching). UK plate syntax correction is applied
    last, when most of the reads (by confidence) fit a UK format: the reader has already weighed
    each read's views for a UK format, and a plate it read as foreign is not forced into one.
    The reads' own alternatives are carried, for people to see only, as `reader_alternatives`.
    """
    if not reads:
        raise ValueError("no reads to fuse")
    length_votes: dict[int, float] = collections.defaultdict(float)
    for read in reads:
        length_votes[len(read.text)] += read.confidence
    length = max(length_votes, key=lambda n: (length_votes[n], -n))
    length_share = length_votes[length] / sum(length_votes.values())
    voters = [read for read in reads if len(read.text) == length]

    chars, confidences, runners_up = [], [], []
    for position in range(length):
        votes: dict[str, float] = collections.defaultdict(float)
        for read in voters:
            votes[read.text[position]] += _char_confidence(read, position)
        ranked = sorted(votes.items(), key=lambda item: item[1], reverse=True)
        chars.append(ranked[0][0])
        confidences.append(ranked[0][1] / len(voters))
        runners_up.append(ranked[1] if len(ranked) > 1 else None)
    text = "".join(chars)
    confidence = min(confidences, default=0.0) * length_share

    alternatives: dict[str, float] = {}
    for position, runner_up in enumerate(runners_up):
        if runner_up is not None:
            char, votes_for = runner_up
            swapped = text[:position] + char + text[position + 1 :]
            weakest = min(confidences[:position] + confidences[position + 1 :], default=1.0)
            alternatives[swapped] = min(weakest, votes_for / len(voters)) * length_share
    for read in reads:
        if len(read.text) != length:
            share = length_votes[len(read.text)] / sum(length_votes.values())
            alternatives[read.text] = max(alternatives.get(read.text, 0.0), read.confidence * share)
    uk_weight = sum(r.confidence for r in reads if uk_format(r.text))
    to_uk_format = uk_weight >= 0.5 * sum(r.confidence for r in reads)
    fused = _corrected(text, confidence, tuple(confidences), alternatives, to_uk_format)
    return replace(fused, reader_alternatives=_reader_alternatives(reads, fused, to_uk_format))


def _reader_alternatives(
    reads: Sequence[PlateRead], fused: PlateRead, to_uk_format: bool
) -> tuple[tuple[str, float], ...]:
    """The reads' own alternatives that name another vehicle than the fused read and its
    alternatives, each with its probability averaged over the reads weighed by their confidence
    (0 where a read did not find it likely), most likely first.

    A look-alike of a text already shown (AXO0RBR beside AX00RBR) names the same vehicle to
    hotlist matching and, beside a UK registration, breaks its format: it is left out. An
    alternative is put in its UK format when the fused read was.
    """
    total = sum(read.confidence for read in reads)
    if total <= 0:
        return ()
    shown = {
        t.translate(CLASS_TRANSLATION) for t in (fused.text, *(a for a, _ in fused.alternatives))
    }
    averaged: dict[str, float] = collections.defaultdict(float)
    for read in reads:
        for text, probability in read.alternatives:
            if to_uk_format:
                text = correct(text)[0]
            if text.translate(CLASS_TRANSLATION) not in shown:
                averaged[text] += probability * read.confidence / total
    listed: dict[str, tuple[str, float]] = {}
    for text, probability in sorted(averaged.items(), key=lambda item: item[1], reverse=True):
        listed.setdefault(text.translate(CLASS_TRANSLATION), (text, round(probability, 4)))
    return tuple(item for item in listed.values() if item[1] > 0)[:_MAX_ALTERNATIVES]


def _corrected(
    text: str,
    confidence: float,
    char_confidences: tuple[float, ...],
    alternatives: dict[str, float],
    to_uk_format: bool,
) -> PlateRead:
    text, plate_format = correct(text) if to_uk_format else (text, uk_format(text))
    corrected_alternatives: dict[str, float] = {}
    for alternative, score in alternatives.items():
        # The raw text stays beside its correction: correction can turn a truncated read into
        # another plate, and the hotlist's misread matching needs what was actually seen.
        for candidate in {alternative, correct(alternative)[0]} - {text}:
            corrected_alternatives[candidate] = max(
                corrected_alternatives.get(candidate, 0.0), score
            )
    ranked = sorted(corrected_alternatives.items(), key=lambda item: item[1], reverse=True)
    return PlateRead(
        text=text,
        confidence=confidence,
        char_confidences=char_confidences,
        alternatives=tuple((t, round(s, 4)) for t, s in ranked[:_MAX_ALTERNATIVES]),
        plate_format=plate_format,
    )


def _is_part_of(part: str, whole: str) -> bool:
    """`part` is a shorter run of `whole`'s characters, look-alikes (O/0, I/1, ...) counting as
    the same: a part of a plate is read with less context than the whole."""
    return len(part) < len(whole) and part.translate(CLASS_TRANSLATION) in whole.translate(
        CLASS_TRANSLATION
    )


def _looks_alike(read: str, other: str) -> bool:
    """The same characters but for look-alikes (O/0, I/1, ...) in some places."""
    return read.translate(CLASS_TRANSLATION) == other.translate(CLASS_TRANSLATION)


def _char_confidence(read: PlateRead, position: int) -> float:
    if len(read.char_confidences) == len(read.text):
        return read.char_confidences[position]
    return read.confidence


def _crop_quality(image: np.ndarray, detection: Detection) -> float:
    """Larger and sharper is better: box width times the root of the Laplacian variance. The
    width, not the height: a far plate's box is much taller than its characters (the plate
    detector boxed the demo's AX00RBR 10-13 px tall from 23 to 45 px wide, 16 at 55), so by
    height its nearest crops scored no better than its farthest."""
    x, y, w, h = detection.box
    crop = image[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return w * float(np.sqrt(sharpness + 1.0))


def _allowance(limits: tuple[float, float, float], frames_elapsed: int) -> float:
    base, per_frame, cap = limits
    return min(base + per_frame * max(frames_elapsed, 0), cap)


def _centre(box: Box) -> tuple[float, float]:
    x, y, w, h = box
    return (x + w / 2, y + h / 2)


def _median_slope(x: np.ndarray, y: np.ndarray) -> float:
    """The Theil-Sen slope of y against x (x strictly increasing)."""
    first, second = np.triu_indices(len(x), 1)
    return float(np.median((y[second] - y[first]) / (x[second] - x[first])))


def _contained(a: Box, b: Box) -> bool:
    """Whether the smaller box lies (almost) wholly inside the larger."""
    smaller = min(a[2] * a[3], b[2] * b[3])
    return smaller > 0 and box_intersection(a, b) >= _CONTAINED * smaller


def _search_window(track: _Track, frame_index: int) -> Box:
    """Where to look for the track's plate in frame `frame_index`: the predicted box with room
    around it for a change of speed or size, growing with the frames unseen."""
    x, y, w, h = track.predicted_box(frame_index)
    unseen = frame_index - track.recent[-1][0]
    room = min(_WINDOW_ROOM[0] + _WINDOW_ROOM[1] * unseen, _WINDOW_ROOM[2])
    dx, dy = round(w * room), round(h * room * 2)
    return (x - dx, y - dy, w + 2 * dx, h + 2 * dy)
