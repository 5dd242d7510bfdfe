"""The daemon's YAML configuration: a typed schema that rejects unknown keys and bad values.

The schema is the config reference: every field has a default that works and a description.
Relative paths in the file are resolved against the directory holding the config file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.types import Marker, Role


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, the field and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Section):
    id: str = Field(description="Camera id carried by every frame, read and alert.", min_length=1)
    source: str = Field(
        description="Video file path, rtsp:// or http(s):// stream URL, or a local camera index such as '0'."
    )
    pacing: Literal["realtime", "fast"] = Field(
        default="realtime",
        description="For video files: 'realtime' plays at the file's frame rate, 'fast' as fast as possible.",
    )
    loop: bool = Field(default=False, description="For video files: start again at the end.")
    calibration: Path | None = Field(
        default=None,
        description="Per-camera calibration YAML (region of interest, plate size, direction).",
    )
    queue_size: int = Field(
        default=8, ge=1, le=1000, description="Frames buffered before the oldest is dropped."
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between reconnection attempts of a stream."
    )
    stall_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="A stream that delivers no frame for this long is closed and reopened.",
    )


class DetectorConfig(_Section):
    backend: Literal["default", "plate", "text", "morphology"] = Field(
        default="default",
        description="'default': the best measured for each use, 'plate' for live video and "
        "'text' for stills (anpr-edge read). 'plate': a small network distilled from the "
        "PP-OCRv4 text detector, as accurate on the shared photos as 720p frames in about half "
        "the time (27-43 against 67-81 ms a frame with the reads) and on the rendered clips (53 "
        "of 53 passes each); 'text': the PP-OCRv4 text detector kept to plate-shaped lines, "
        "two points better on stills at 1280 px (87.1% against 85.2% held out; "
        "models/README.md); "
        "'morphology': model-free stroke filtering, a cheap and much less accurate fallback.",
    )
    min_score: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Detections scoring below this are dropped."
    )
    model: Path | None = Field(
        default=None,
        description="Model for the 'plate' or 'text' backend; the bundled "
        "models/plate_detector.onnx or models/text_detector.onnx when empty.",
    )
    input_long_side: int | None = Field(
        default=None,
        ge=128,
        le=2048,
        description="'plate' and 'text' backends: the image's long side is resized to this (at "
        "most 2x up) before detection; empty: 800 for 'plate', 960 for 'text'. Smaller plates "
        "are missed at smaller sizes; time grows with its square.",
    )
    still_input_long_side: int | None = Field(
        default=None,
        ge=128,
        le=4096,
        description="As input_long_side, for still images (`anpr-edge read`), where there is "
        "time to look for smaller plates than in live video; empty: 1280.",
    )
    retry_input_side: int = Field(
        default=0,
        ge=0,
        le=2048,
        description="'plate' and 'text' backends: when non-zero, a window around a plate read in "
        "the last 3 "
        "frames whose search finds no whole plate is searched again, with the others like it "
        "packed into one input padded with the mean colour to at least this many network pixels "
        "each way. The text detector often finds nothing, or a fragment, in a small input that a "
        "plate fills much of: on real photos moved as video it found the plate in 90% of the "
        "searches around tracked plates, 96% with this at 480, but read only one more pass of "
        "91 exactly, so it is off (models/README.md).",
    )
    max_detections: int = Field(
        default=8, ge=1, le=64, description="Most candidate boxes per image passed to the reader."
    )
    still_tiles: bool = Field(
        default=True,
        description="Still images only (`anpr-edge read`): a photo whose long side is more than "
        "still_input_long_side, which the whole-photo search takes down in size, is searched "
        "again in overlapping tiles of that side at its own pixels, and the plates found there "
        "that the whole-photo search did not find are read too: a small plate in a large photo. "
        "Measured on the 101 held-out shared photos set in a picture three times as wide and "
        "high: 66 -> 96 plates found, 57 -> 84 read exactly, about 1.6 s a photo on 2 cores "
        "(README.md, 'Large photos'); the shared photos as they are read as without it.",
    )
    still_fallback: Literal["none", "plate", "text"] = Field(
        default="plate",
        description="Still images only (`anpr-edge read`): a second detector that searches a "
        "photo again when nothing the first found reads as a plate at the reader's "
        "min_confidence, adding the boxes the first did not find. The text detector can spend "
        "all its candidates on other writing (a dealer's frame, a sticker) and miss the plate, "
        "which the plate detector, trained on plates, finds: held-out shared photos 91 -> 92 "
        "of 101 read exactly, no wrong read added, the training split unchanged "
        "(models/README.md). 'none', or the stills detector's own backend: no second search.",
    )


class ReaderConfig(_Section):
    backend: Literal["onnx", "easyocr"] = Field(
        default="onnx",
        description="'onnx': bundled plate reader; 'easyocr': optional reference reader.",
    )
    model: Path | None = Field(
        default=None,
        description="ONNX reader model; the bundled models/reader.onnx when empty (it learned "
        "from every shared photo; models/reader_training_split.onnx is the same recipe without "
        "the held-out ones, the one to measure on them).",
    )
    min_confidence: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Reads below this confidence are not matched."
    )


class TrackingConfig(_Section):
    iou_threshold: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Minimum box overlap to continue a track."
    )
    max_gap_s: float = Field(
        default=1.0,
        gt=0,
        description="A track unseen for this long is finished and its read emitted (time in "
        "the clip when a file is replayed with pacing 'fast', as for repeat_window_s).",
    )
    reads_per_track: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Legible reads of a track's best crops that are fused: once this many are "
        "in, a clearly better crop's read replaces the poorest crop's while they disagree "
        "(illegible reads of a plate still too far away do not count; up to 4 attempts per "
        "read, and after them only crops clearly better than any read yet).",
    )
    motion_gate: bool = Field(
        default=True,
        description="Skip detection on frames with no motion in the region of interest, and "
        "detect only around what moves on the others.",
    )
    full_search_every: int = Field(
        default=3,
        ge=1,
        le=25,
        description="Search the region of interest (its moving parts) on every Nth frame "
        "detected; on the others only around the plates already tracked. A new plate is found "
        "within N frames; 1 searches everywhere on every frame.",
    )
    min_sightings: int = Field(
        default=3,
        ge=1,
        le=25,
        description="A track detected in fewer frames than this is not emitted unless its reads "
        "agree as for an early emit: a plate in view long enough to read is detected in "
        "several, and one seen once or twice and read once is most often something else (a "
        "sign, a speck read as a short plate) or a far plate read in part.",
    )
    early_emit_reads: int = Field(
        default=3,
        ge=0,
        le=50,
        description="Emit a track's read as soon as this many reads agree (or two, each at "
        "least 95% sure and fitting a UK format), before the vehicle leaves (low alert "
        "latency); 0 waits for the end of the pass.",
    )
    repeat_window_s: float = Field(
        default=10.0,
        ge=0,
        description="A pass whose read equals one emitted by this camera this recently is "
        "suppressed (a track broken by missed detections); so is one whose read is part of a "
        "longer read of a plate in view at the time (a plate entering the picture, tracked on "
        "its own for a frame or two). A possible-misread hit on a hotlist entry this camera "
        "alerted on this recently (in capture time) does not alert again; exact hits always do.",
    )


class HotlistConfig(_Section):
    paths: list[Path] = Field(default_factory=list, description="Hotlist files loaded together.")
    reload_interval_s: float = Field(
        default=2.0, gt=0, description="How often files are checked for changes (hot reload)."
    )
    fuzzy_alert: dict[Marker, bool] = Field(
        default_factory=lambda: {m: True for m in Marker},
        description="Per marker: whether a possible-misread hit raises an alert.",
    )
    max_distance: int = Field(
        default=1,
        ge=0,
        le=1,
        description="Missing, extra or wrong characters (besides confusable swaps such as O/0, "
        "which are always tolerated) a read may have and still be a possible misread: 0 or 1.",
    )
    misread_doubt_below: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Off (null) by default. When set (0.999 measured), a wrong or extra "
        "character makes a possible misread only if the reader was less sure of it than this "
        "(its character confidence); confusable swaps and a missing character always count. "
        "On a list of 1M random entries it cut the passing vehicles with a false possible "
        "misread from 18% to 2%, but lost wanted vehicles misread for sure in foreign fonts "
        "(2 of 272 shared photos): see README, 'Possible misreads on big lists'.",
    )


class ConsoleKey(_Section):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Who holds the key; the console's identity in acks and the decision log.",
    )
    role: Role = Field(description="'tfc' or 'tsg': what alerts this key may receive.")
    public_key: Path = Field(description="The console's CURVE public key file (NAME.key).")
    tsg_alerts: bool = Field(
        default=True,
        description="tfc consoles: also receive the TSG's (non-firearms) alerts. "
        "Must stay true for tsg consoles.",
    )

    @model_validator(mode="after")
    def _tsg_gets_tsg_alerts(self) -> ConsoleKey:
        if self.role == Role.TSG and not self.tsg_alerts:
            raise ValueError("a tsg console always receives tsg alerts: remove 'tsg_alerts: false'")
        return self

    @property
    def receives(self) -> frozenset[Role]:
        """The alert roles routed to this console: enforced by its key, whatever it claims."""
        if self.role == Role.TFC and self.tsg_alerts:
            return frozenset({Role.TFC, Role.TSG})
        return frozenset({self.role})


class AlertsConfig(_Section):
    bind: str = Field(
        default="tcp://127.0.0.1:5556",
        description="Where the daemon serves consoles (ZeroMQ endpoint).",
    )
    insecure: bool = Field(
        default=False, description="Plain-text transport, no CURVE: only for local demos."
    )
    server_secret_key: Path | None = Field(
        default=None, description="The daemon's CURVE secret key file (required unless insecure)."
    )
    consoles: list[ConsoleKey] = Field(
        default_factory=list, description="Enrolled consoles: public key bound to a role."
    )
    journal: Path = Field(
        default=Path("var/journal.sqlite"),
        description="SQLite journal of every alert, written before sending.",
    )
    journal_sync: Literal["normal", "full"] = Field(
        default="normal",
        description="'normal': a journalled alert survives the daemon being killed; "
        "'full': it also survives a power cut (one disk flush per alert).",
    )
    replay_max_age_s: float = Field(
        default=86400.0,
        gt=0,
        description="Unacknowledged alerts younger than this are re-sent to a console that connects.",
    )
    evidence_dir: Path = Field(
        default=Path("var/evidence"),
        description="Console side: where a console saves the plate crops and overview frames it "
        "receives, the ids it has shown and its decision log (a subfolder per role).",
    )
    heartbeat_s: float = Field(
        default=1.0,
        gt=0,
        le=1.0,
        description="Heartbeat interval both ways; a link is shown down after 2.5 intervals of silence.",
    )

    @model_validator(mode="after")
    def _secure_needs_keys(self) -> AlertsConfig:
        if not self.insecure and self.server_secret_key is None:
            raise ValueError(
                "server_secret_key is required unless 'insecure: true' "
                "(make one with 'anpr-edge keys new daemon')"
            )
        names = [console.name for console in self.consoles]
        keys = [console.public_key for console in self.consoles]
        for what, values in (("name", names), ("public_key", keys)):
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(
                    f"each console needs its own {what}; repeated: {', '.join(repeated)}"
                )
        return self


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="INFO: alerts, hotlist reloads, camera faults; DEBUG adds every read (personal "
        "data: keep off in service).",
    )
    health_interval_s: float = Field(
        default=10.0, gt=0, description="How often camera health is logged and published."
    )


class EdgeConfig(_Section):
    cameras: Annotated[list[CameraConfig], Field(min_length=1)]
    detector: DetectorConfig = DetectorConfig()
    reader: ReaderConfig = ReaderConfig()
    tracking: TrackingConfig = TrackingConfig()
    hotlists: HotlistConfig = HotlistConfig()
    alerts: AlertsConfig = AlertsConfig(insecure=True)
    logging: LoggingConfig = LoggingConfig()

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cameras]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(duplicates)}")
        return cameras


def resolve_paths(raw: object, base: Path) -> object:
    """Resolve relative paths in the known path fields against the config file's directory."""
    if not isinstance(raw, dict):
        return raw
    path_fields = {
        "cameras": ["calibration"],
        "detector": ["model"],
        "reader": ["model"],
        "alerts": ["server_secret_key", "journal", "evidence_dir"],
    }
    for section, keys in path_fields.items():
        value = raw.get(section)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                for key in keys:
                    if isinstance(item.get(key), str):
                        item[key] = str(base / item[key])
    hotlists = raw.get("hotlists")
    if isinstance(hotlists, dict) and isinstance(hotlists.get("paths"), list):
        hotlists["paths"] = [str(base / p) if isinstance(p, str) else p for p in hotlists["paths"]]
    alerts = raw.get("alerts")
    if isinstance(alerts, dict) and isinstance(alerts.get("consoles"), list):
        for console in alerts["consoles"]:
            if isinstance(console, dict) and isinstance(console.get("public_key"), str):
                console["public_key"] = str(base / console["public_key"])
    for camera in raw.get("cameras") or []:
        if isinstance(camera, dict):
            source = camera.get("source")
            if isinstance(source, int):
                camera["source"] = str(source)
            elif isinstance(source, str) and "://" not in source and not source.isdigit():
                camera["source"] = str(base / source)
    return raw


def format_validation_error(
    path: Path,
    error: ValidationError,
    *,
    text: str | None = None,
    what: str = "configuration",
    reference: str = "the config reference in README.md",
) -> str:
    """One line per problem: its line in the file (when `text`, the file's YAML, is given), the
    key's path and what is wrong."""
    lines = [f"{path}: invalid {what}"]
    for item in error.errors():
        # pydantic names validator steps in the location ("function-after[...]"): not keys.
        loc = [part for part in item["loc"] if not (isinstance(part, str) and "[" in part)]
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling against {reference})"
        elif item["type"] == "missing":
            message = "required key is missing"
        line = yaml_line(text, loc) if text is not None else None
        lines.append(f"  line {line}: {where}: {message}" if line else f"  {where}: {message}")
    return "\n".join(lines)


def yaml_line(text: str, loc: Sequence[str | int]) -> int | None:
    """1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
        else:
            child = None
        if child is None:
            break
        node = child
    return None if node is None else node.start_mark.line + 1


def parse_config(raw: object, source: Path, text: str | None = None) -> EdgeConfig:
    """The validated config from parsed YAML; `text`, the file's YAML, puts lines in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    try:
        return EdgeConfig.model_validate(resolve_paths(raw, source.parent))
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error, text=text)) from None


def read_yaml(
    path: Path, what: str, error_type: type[ConfigError] = ConfigError
) -> tuple[str, object]:
    """The text of a YAML file and what it parses to; errors name the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise error_type(f"{path}: cannot read {what} file: {error.strerror}") from None
    try:
        return text, yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(error, "problem", error)
        raise error_type(f"{path}:{where} not valid YAML: {problem}") from None


def load_config(path: str | Path) -> EdgeConfig:
    path = Path(path)
    text, raw = read_yaml(path, "config")
    return parse_config(raw, path, text)


def config_reference() -> str:
    """The config reference as a markdown table, generated from the schema (README.md embeds it)."""
    rows = ["| key | default | description |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            annotation = field.annotation
            nested = getattr(annotation, "__args__", (annotation,))
            section = next(
                (t for t in nested if isinstance(t, type) and issubclass(t, BaseModel)), None
            )
            if section is not None:
                suffix = "[]." if annotation is not section else "."
                walk(section, key + suffix)
                continue
            if field.is_required():
                default = "required"
            else:
                value = field.get_default(call_default_factory=True)
                if isinstance(value, dict):
                    value = {str(k): v for k, v in value.items()}
                if isinstance(value, Path):
                    value = str(value)
                rendered = yaml.safe_dump(value, default_flow_style=True, width=200).strip()
                rendered = rendered.removesuffix("...").strip()
                default = f"`{rendered}`" if value not in (None, [], {}) else "none"
            rows.append(f"| `{key}` | {default} | {field.description or ''} |")

    walk(EdgeConfig, "")
    return "\n".join(rows)


if __name__ == "__main__":
    print(config_reference())
