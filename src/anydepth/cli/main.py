"""`anydepth` entry point: subcommands, and the boundary where user errors become one line."""

from __future__ import annotations

import argparse
import sys
import warnings

from anydepth import __version__
from anydepth.cli import demo, events, export, focus, image, synth
from anydepth.cli.common import add_progress, set_progress
from anydepth.errors import AnydepthError, AnydepthWarning

COMMANDS = {"demo": demo, "image": image, "events": events, "focus": focus, "synth": synth, "export": export}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anydepth",
        description="Depth Anything V2 for cameras it was never trained on (event cameras, focal stacks).",
    )
    parser.add_argument("--version", action="version", version=f"anydepth {__version__}")
    add_progress(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def _command_name(args) -> str:
    return " ".join(part for part in ("anydepth", args.command, getattr(args, "action", None)) if part)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else [str(arg) for arg in argv])
    if args.command is None:
        parser.print_help()
        return 2
    set_progress(not args.no_progress)
    show_warning = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AnydepthWarning):
            print(f"{_command_name(args)}: warning: {message}", file=sys.stderr)
        else:
            show_warning(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line
    try:
        return int(args.run(args) or 0)
    except AnydepthError as error:
        print(f"{_command_name(args)}: error: {error.for_command(vars(args))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_command_name(args)}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show_warning


if __name__ == "__main__":
    sys.exit(main())
