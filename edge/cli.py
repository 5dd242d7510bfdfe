"""`anpr-edge` command line: each subcommand hands over to the stage module that owns it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge.config import ConfigError, load_config


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from edge.pipeline import run_daemon

    return run_daemon(config, max_seconds=args.max_seconds)


def _cmd_read(args: argparse.Namespace) -> int:
    from edge.pipeline import read_images

    return read_images(args.images, as_json=args.json, config_path=args.config)


def _cmd_console(args: argparse.Namespace) -> int:
    from edge.console import run_console

    config = load_config(args.config)
    return run_console(
        config,
        role=args.role,
        as_json=args.json,
        secret_key=args.key,
        endpoint=args.connect,
        max_alerts=args.max_alerts,
        max_seconds=args.max_seconds,
    )


def _cmd_hotlist_check(args: argparse.Namespace) -> int:
    from edge.hotlist import check_files

    return check_files(args.files)


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from edge.keys import new_keypair_command

    return new_keypair_command(args.name, args.dir)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from edge.calibration import calibrate_command

    return calibrate_command(args.source, args.camera, args.out, frames=args.frames)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anpr-edge", description="Number-plate recognition daemon for a parked ANPR vehicle."
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="More log output (-vv: debug)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="Run the daemon: cameras -> plates -> hotlists -> alerts."
    )
    run.add_argument("--config", required=True, type=Path, help="YAML config file (see edge.yaml).")
    run.add_argument(
        "--max-seconds", type=float, default=None, help="Stop after this long (testing)."
    )
    run.set_defaults(handler=_cmd_run)

    read = commands.add_parser("read", help="Read plates in still images.")
    read.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    read.add_argument("--json", action="store_true", help="One JSON object per line per image.")
    read.add_argument(
        "--config", type=Path, default=None, help="Take detector/reader settings from here."
    )
    read.set_defaults(handler=_cmd_read)

    console = commands.add_parser(
        "console", help="Receive and show alerts as a TFC or TSG console."
    )
    console.add_argument("--config", required=True, type=Path)
    console.add_argument("--role", required=True, choices=["tfc", "tsg"])
    console.add_argument("--json", action="store_true", help="One JSON object per line per alert.")
    console.add_argument(
        "--key", type=Path, default=None, help="This console's CURVE secret key file."
    )
    console.add_argument("--connect", default=None, help="Daemon endpoint (default: alerts.bind).")
    console.add_argument(
        "--max-alerts", type=int, default=None, help="Exit after this many alerts."
    )
    console.add_argument("--max-seconds", type=float, default=None, help="Exit after this long.")
    console.set_defaults(handler=_cmd_console)

    hotlist = commands.add_parser("hotlist", help="Hotlist tools.")
    hotlist_commands = hotlist.add_subparsers(
        dest="hotlist_command", required=True, metavar="ACTION"
    )
    check = hotlist_commands.add_parser("check", help="Validate hotlist files and summarise them.")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(handler=_cmd_hotlist_check)

    keys = commands.add_parser("keys", help="CURVE key management.")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = keys_commands.add_parser("new", help="Make a CURVE key pair NAME.key / NAME.key_secret.")
    new.add_argument("name")
    new.add_argument("--dir", type=Path, default=Path("keys"), help="Where to write the key files.")
    new.set_defaults(handler=_cmd_keys_new)

    calibrate = commands.add_parser(
        "calibrate",
        help="Suggest a camera calibration from a frame or clip, with an annotated PNG.",
    )
    calibrate.add_argument("source", type=Path, help="An image or a video clip from the camera.")
    calibrate.add_argument(
        "--camera", default="cam1", help="Camera id to write in the calibration."
    )
    calibrate.add_argument(
        "--out", type=Path, default=Path("calibration"), help="Output directory."
    )
    calibrate.add_argument("--frames", type=int, default=50, help="Frames of a clip to sample.")
    calibrate.set_defaults(handler=_cmd_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"anpr-edge: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
