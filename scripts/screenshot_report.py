#!/usr/bin/env python
"""Screenshot an HTML report with headless Chromium and check the picture is not blank.

    python scripts/screenshot_report.py REPORT.html OUT.png [--width 1280] [--height N]

Without --height the whole page is captured (tall window, empty bottom cropped). Exits 1 with a
one-line message when no browser is found or the page does not render.
"""

from __future__ import annotations

import argparse
import sys

from anydepth.errors import AnydepthError
from anydepth.report import screenshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="the HTML file")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="window width in px (default 1280)")
    parser.add_argument("--height", type=int, default=None, help="window height in px (default: the full page)")
    args = parser.parse_args(argv)
    try:
        path = screenshot(args.report, args.out, width=args.width, height=args.height)
    except AnydepthError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
