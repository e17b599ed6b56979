"""A tiny, dependency-free HTML report: tables, figures (base64 PNG) and notices in one file.

    report = Report("anydepth demo", subtitle="synthetic data", device="cuda (NVIDIA H100)")
    report.add_notice("no official DAv2 weights found: ...", kind="warning")
    report.add_section("Events", Table("Metrics", ["method", "AbsRel"], rows, highlight={"AbsRel": "min"}),
                       Figure("Depth", [("prediction", rgb_array), ("target", "target.png")]))
    report.write("out/report.html")
    print(report.to_text())

Everything (CSS, images) is inline, so the single file works offline; all text is HTML-escaped.
`screenshot` renders a report with headless Chromium.
"""

from __future__ import annotations

import base64
import datetime as _datetime
import html
import importlib.metadata
import math
import numbers
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anydepth import fileio, viz
from anydepth.atomic import atomic_write
from anydepth.errors import InputError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
NOTICE_KINDS = ("info", "warning", "error")
_MISSING = "—"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_nan(value: object) -> bool:
    return value is None or (_is_number(value) and math.isnan(float(value)))


def format_cell(value: object, digits: int = 3) -> str:
    """A table cell as text: floats with `digits` decimals, integers as they are, NaN/None as '—'."""
    if _is_nan(value):
        return _MISSING
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if _is_number(value):
        number = float(value)
        if math.isinf(number):
            return "∞" if number > 0 else "-∞"
        if number != 0 and abs(number) < 0.5 * 10 ** -digits:
            return f"{number:.{max(digits - 1, 1)}e}"
        return f"{number:.{digits}f}"
    return str(value)


class Table:
    """A titled table. `highlight` maps a column name to "min" or "max": the best numeric value(s)
    of that column are bold in HTML and marked with '*' in text."""

    def __init__(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], note: str = "",
                 highlight: dict[str, str] | None = None, digits: int = 3):
        self.title, self.columns, self.note, self.digits = str(title), [str(c) for c in columns], str(note), digits
        self.rows = [list(row) for row in rows]
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise InputError(f"table {self.title!r}: row {index} has {len(row)} cells, expected {len(self.columns)}")
        self.highlight = dict(highlight or {})
        for column, mode in self.highlight.items():
            if column not in self.columns:
                raise InputError(f"table {self.title!r}: highlight column {column!r} is not one of {self.columns}")
            if mode not in ("min", "max"):
                raise InputError(f"table {self.title!r}: highlight for {column!r} must be 'min' or 'max', not {mode!r}")

    def best_cells(self) -> set[tuple[int, int]]:
        """(row, column) indices of the best value(s) of each highlighted column (ties all count)."""
        best: set[tuple[int, int]] = set()
        for column, mode in self.highlight.items():
            j = self.columns.index(column)
            values = [(i, float(row[j])) for i, row in enumerate(self.rows)
                      if _is_number(row[j]) and not math.isnan(float(row[j]))]
            if not values:
                continue
            target = (min if mode == "min" else max)(v for _, v in values)
            best |= {(i, j) for i, v in values if v == target}
        return best

    def _cells(self) -> list[list[str]]:
        return [[format_cell(value, self.digits) for value in row] for row in self.rows]

    def to_text(self) -> str:
        """A fixed-width terminal table: title, header, rule, rows (numbers right-aligned), note."""
        cells, best = self._cells(), self.best_cells()
        for i, j in best:
            cells[i][j] += "*"
        numeric = [any(_is_number(row[j]) for row in self.rows) for j in range(len(self.columns))]
        widths = [max([len(self.columns[j])] + [len(row[j]) for row in cells]) for j in range(len(self.columns))]

        def line(values: list[str]) -> str:
            return "  ".join(v.rjust(w) if numeric[j] else v.ljust(w)
                             for j, (v, w) in enumerate(zip(values, widths))).rstrip()

        out = [self.title, line(self.columns), "  ".join("-" * w for w in widths)]
        out += [line(row) for row in cells] or ["(no rows)"]
        notes = [self.note] if self.note else []
        if best:
            notes.append("* best per column (" + ", ".join(f"{c}: {m}" for c, m in self.highlight.items()) + ")")
        out += notes
        return "\n".join(out)

    def to_html(self) -> str:
        cells, best = self._cells(), self.best_cells()
        numeric = [any(_is_number(row[j]) for row in self.rows) for j in range(len(self.columns))]
        head = "".join(f'<th class="{"num" if numeric[j] else "txt"}">{_esc(c)}'
                       + (f' <span class="hl">({_esc(self.highlight[c])})</span>' if c in self.highlight else "")
                       + "</th>" for j, c in enumerate(self.columns))
        body = []
        for i, row in enumerate(cells):
            tds = []
            for j, text in enumerate(row):
                content = f"<strong>{_esc(text)}</strong>" if (i, j) in best else _esc(text)
                klass = "num" if numeric[j] else "txt"
                if text == _MISSING:
                    klass += " missing"
                tds.append(f'<td class="{klass}">{content}</td>')
            body.append("<tr>" + "".join(tds) + "</tr>")
        if not body:
            body.append(f'<tr><td colspan="{len(self.columns)}" class="missing">(no rows)</td></tr>')
        note = f'<p class="note">{_esc(self.note)}</p>' if self.note else ""
        return (f'<figure class="table"><figcaption>{_esc(self.title)}</figcaption>'
                f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
                f"{note}</figure>")


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey uint8 array -> PNG bytes (bool and float in
    [0, 1] are scaled by `viz.to_uint8`)."""
    array = np.asarray(image)
    if array.dtype not in (np.uint8, np.bool_) and not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"figure image must be uint8 (or float in [0, 1]), got {array.dtype}")
    array = viz.to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InputError(f"figure image must be (H, W, 3) RGB or (H, W) grey, got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"figure image is empty (shape {array.shape})")
    data = fileio.encode_image(".png", array)
    if data is None:
        raise InputError(f"could not encode an image of shape {array.shape} as PNG")
    return data


def _image_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """(width, height) from a PNG header, else None."""
    if mime == "image/png" and len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".svg": "image/svg+xml"}


def slug(text: str, words: int = 3, limit: int = 40) -> str:
    """A short file-name part of `text`: lower-case words joined by '-', the first `words` of them
    that fit in `limit` characters (whole words; "x" when nothing is left)."""
    kept: list[str] = []
    for part in re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-").split("-")[:words]:
        if kept and len("-".join(kept + [part])) > limit:
            break
        kept.append(part)
    return "-".join(kept)[:limit] or "x"


class Figure:
    """A titled grid of captioned images: PNG (or JPEG/WebP/SVG) files, or (H, W, 3) uint8 RGB
    arrays (encoded to PNG), embedded as data: URIs. Images narrower than 256 px are scaled up
    without smoothing (pixelated) unless `pixelated` says otherwise; `columns` fixes the grid
    width (default: as many as fit, at least `min_width` px each). name: the short slug its image
    files are named by (`Report.write_images`; default the title's first three words)."""

    def __init__(self, title: str, images: Sequence[tuple[str, str | Path | np.ndarray]], note: str = "",
                 columns: int | None = None, min_width: int = 220, pixelated: bool | None = None,
                 name: str | None = None):
        self.title, self.note, self.columns, self.min_width, self.pixelated = str(title), str(note), columns, min_width, pixelated
        self.name = slug(name if name is not None else title, 3 if name is None else 8)
        self.images: list[tuple[str, bytes, str]] = []  # (caption, data, mime)
        for caption, source in images:
            if isinstance(source, (str, Path)):
                path = Path(source)
                if not path.is_file():
                    raise InputError("figure image: no such file", path)
                mime = _MIME.get(path.suffix.lower())
                if mime is None:
                    raise InputError(f"figure image: unsupported extension {path.suffix!r} (use {', '.join(_MIME)})", path)
                self.images.append((str(caption), path.read_bytes(), mime))
            else:
                self.images.append((str(caption), encode_png(source), "image/png"))

    def data_uris(self) -> list[str]:
        return [f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}" for _, data, mime in self.images]

    def to_text(self) -> str:
        return f"{self.title}: " + ", ".join(caption for caption, _, _ in self.images)

    def to_html(self) -> str:
        style = (f"grid-template-columns: repeat({int(self.columns)}, minmax(0, 1fr))" if self.columns
                 else f"grid-template-columns: repeat(auto-fill, minmax({int(self.min_width)}px, 1fr))")
        cells = []
        for (caption, data, mime), uri in zip(self.images, self.data_uris()):
            size = _image_size(data, mime)
            pixelated = self.pixelated if self.pixelated is not None else (size is not None and size[0] < 256)
            attributes = f' width="{size[0]}" height="{size[1]}"' if size else ""
            klass = ' class="pixelated"' if pixelated else ""
            cells.append(f'<figure class="image"><img src="{uri}" alt="{_esc(caption)}"{attributes}{klass}>'
                         f"<figcaption>{_esc(caption)}</figcaption></figure>")
        note = f'<p class="note">{_esc(self.note)}</p>' if self.note else ""
        return (f'<div class="figure"><h3>{_esc(self.title)}</h3>'
                f'<div class="grid" style="{style}">{"".join(cells)}</div>{note}</div>')


def environment_line(device: str | None = None) -> str:
    """'python 3.x · numpy … · torch … · device …' (torch's version from package metadata, so
    torch is not imported; the device only when given, or when torch is already imported)."""
    parts = [f"python {platform.python_version()}"]
    for package in ("numpy", "torch"):
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    if device is None and "torch" in sys.modules:
        torch = sys.modules["torch"]
        try:
            device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
        except Exception:  # noqa: BLE001 - a broken CUDA setup must not break the report
            device = None
    if device:
        parts.append(f"device {device}")
    parts.append(f"{platform.system()} {platform.machine()}".strip())
    return " · ".join(parts)


class Section:
    def __init__(self, heading: str, items: Sequence[object], text: str = ""):
        self.heading, self.text = str(heading), str(text)
        self.items = list(items)
        for item in self.items:
            if not isinstance(item, (Table, Figure, str)):
                raise InputError(f"section {self.heading!r}: items must be Table, Figure or str, not {type(item).__name__}")

    @property
    def anchor(self) -> str:
        return "s-" + (re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "section")


_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f6f7f9;color:#1f2328;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:1200px;margin:0 auto;padding:0 24px 40px}
header{background:#fff;border-bottom:1px solid #d8dee4;margin-bottom:20px}
header .inner{max-width:1200px;margin:0 auto;padding:20px 24px 14px}
h1{font-size:26px;margin:0 0 2px;font-weight:650;letter-spacing:-.01em}
.subtitle{color:#424a53;margin:0 0 6px;font-size:16px}
.meta{color:#656d76;font-size:13px;margin:0}
nav{margin-top:10px;font-size:13px}
nav a{color:#0969da;text-decoration:none;margin-right:14px;white-space:nowrap}
nav a:hover{text-decoration:underline}
section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:16px 20px 10px;margin:0 0 20px}
h2{font-size:20px;margin:0 0 8px;font-weight:600;padding-bottom:6px;border-bottom:1px solid #eaeef2}
h3{font-size:15px;margin:14px 0 8px;font-weight:600;color:#24292f}
p{margin:8px 0}
.note{color:#656d76;font-size:13px;margin:6px 0 10px}
.notice{border-radius:8px;padding:10px 14px;margin:0 0 14px;border:1px solid;font-size:14px}
.notice b{margin-right:6px}
.notice.info{background:#ddf4ff;border-color:#80ccff;color:#0a3069}
.notice.warning{background:#fff8c5;border-color:#d4a72c;color:#4d2d00}
.notice.error{background:#ffebe9;border-color:#ff8182;color:#82071e}
figure{margin:0}
figure.table{margin:12px 0 14px}
figure.table>figcaption{font-weight:600;font-size:15px;margin-bottom:6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:14px;min-width:40%}
th,td{padding:5px 12px;border-bottom:1px solid #eaeef2;white-space:nowrap}
thead th{background:#f0f3f6;border-bottom:2px solid #d0d7de;font-weight:600;text-align:left}
tbody tr:nth-child(even){background:#f8f9fb}
tbody tr:hover{background:#eef4fb}
.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:13px}
th.num{font-family:inherit;font-size:14px;text-align:right}
td strong{color:#1a7f37}
.missing{color:#8c959f}
.hl{color:#8c959f;font-weight:400;font-size:12px}
.grid{display:grid;gap:12px;margin:4px 0 10px;align-items:start}
figure.image{background:#f6f8fa;border:1px solid #eaeef2;border-radius:6px;padding:6px}
figure.image img{display:block;width:100%;height:auto;border-radius:3px;background:#fff}
figure.image img.pixelated{image-rendering:pixelated}
figure.image figcaption{font-size:13px;color:#424a53;text-align:center;padding-top:4px;overflow-wrap:anywhere}
footer{color:#8c959f;font-size:12px;text-align:center;padding:8px 0 24px}
@media print{body{background:#fff}section{border:none;break-inside:avoid}}
"""


class Report:
    """A one-file HTML report (and its terminal text). Build with add_section / add_notice."""

    def __init__(self, title: str, subtitle: str = "", device: str | None = None, environment: str | None = None,
                 date: _datetime.datetime | None = None):
        self.title, self.subtitle = str(title), str(subtitle)
        self.device, self.environment = device, environment
        self.date = date or _datetime.datetime.now().astimezone()
        self.sections: list[Section] = []
        self.notices: list[tuple[str, str]] = []

    def add_section(self, heading: str, *items: Table | Figure | str, text: str = "") -> Section:
        """A section: an optional introductory paragraph, then the items in order (Table, Figure,
        or a str shown as a paragraph)."""
        section = Section(heading, items, text)
        self.sections.append(section)
        return section

    def add_notice(self, text: str, kind: str = "info") -> None:
        """A visible banner under the header ("info", "warning" or "error")."""
        if kind not in NOTICE_KINDS:
            raise InputError(f"notice kind must be one of {', '.join(NOTICE_KINDS)}, not {kind!r}")
        self.notices.append((kind, str(text)))

    def tables(self) -> list[Table]:
        return [item for section in self.sections for item in section.items if isinstance(item, Table)]

    def _environment(self) -> str:
        return self.environment if self.environment is not None else environment_line(self.device)

    def to_html(self) -> str:
        date = self.date.strftime("%Y-%m-%d %H:%M %Z").strip()
        anchors, seen = [], set()
        for section in self.sections:
            anchor, n = section.anchor, 2
            while anchor in seen:
                anchor, n = f"{section.anchor}-{n}", n + 1
            seen.add(anchor)
            anchors.append(anchor)
        nav = ("<nav>" + "".join(f'<a href="#{a}">{_esc(s.heading)}</a>' for s, a in zip(self.sections, anchors))
               + "</nav>") if len(self.sections) > 1 else ""
        subtitle = f'<p class="subtitle">{_esc(self.subtitle)}</p>' if self.subtitle else ""
        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 '<meta name="viewport" content="width=device-width, initial-scale=1">',
                 f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head><body>",
                 f'<header><div class="inner"><h1>{_esc(self.title)}</h1>{subtitle}'
                 f'<p class="meta">{_esc(date)} · {_esc(self._environment())}</p>{nav}</div></header><main>']
        for kind, text in self.notices:
            label = {"info": "Note:", "warning": "Warning:", "error": "Error:"}[kind]
            parts.append(f'<div class="notice {kind}" role="{"alert" if kind != "info" else "note"}">'
                         f"<b>{label}</b>{_esc(text)}</div>")
        for section, anchor in zip(self.sections, anchors):
            parts.append(f'<section id="{anchor}"><h2>{_esc(section.heading)}</h2>')
            if section.text:
                parts.append(f"<p>{_esc(section.text)}</p>")
            for item in section.items:
                parts.append(f"<p>{_esc(item)}</p>" if isinstance(item, str) else item.to_html())
            parts.append("</section>")
        parts.append(f"</main><footer>{_esc(self.title)} · generated by anydepth · {_esc(date)}</footer></body></html>")
        return "\n".join(parts) + "\n"

    def to_text(self) -> str:
        """The terminal version: title, notices, and every table under its section heading."""
        out = [self.title + (f" — {self.subtitle}" if self.subtitle else ""), "=" * len(self.title)]
        out += [f"[{kind}] {text}" for kind, text in self.notices]
        for section in self.sections:
            tables = [item for item in section.items if isinstance(item, Table)]
            if tables:
                out += ["", f"## {section.heading}"]
                for table in tables:
                    out += ["", table.to_text()]
        return "\n".join(out) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the HTML atomically (UTF-8) and return its path."""
        text = self.to_html()

        return atomic_write(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))

    def write_images(self, folder: str | Path, prefix: str = "") -> list[Path]:
        """Write every figure image as its own file (PNG for arrays) into `folder`, named by short
        slugs: '<prefix><section>-<figure>-<caption>.png', the section's and the figure's first three
        words and the caption's first six (a figure's `name`, when given, instead of its title's);
        a name taken twice gets -2, -3... Returns the paths."""
        folder, written, used = Path(folder), [], set()
        for section in self.sections:
            for item in section.items:
                if not isinstance(item, Figure):
                    continue
                for caption, data, mime in item.images:
                    extension = {v: k for k, v in _MIME.items()}[mime]
                    stem, n = f"{prefix}{slug(section.heading, 3)}-{item.name}-{slug(caption, 6)}", 2
                    name = stem + extension
                    while name in used:
                        name, n = f"{stem}-{n}{extension}", n + 1
                    used.add(name)
                    written.append(atomic_write(folder / name, lambda temporary, data=data: (
                        Path(temporary).write_bytes(data))))
        return written


def find_browser() -> str | None:
    """Path of a Chromium-family browser ($ANYDEPTH_BROWSER first, then chromium, chrome, ...)."""
    override = os.environ.get("ANYDEPTH_BROWSER")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _trim_bottom(image: np.ndarray, margin: int = 16) -> np.ndarray:
    """Drop the uniform rows at the bottom of a page screenshot (keeping `margin` of them)."""
    last = image[-1]
    same = np.all(image == last[None], axis=(1, 2))
    content = np.flatnonzero(~same)
    if content.size == 0:
        return image
    return image[: min(image.shape[0], int(content[-1]) + 1 + margin)]


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1280, height: int | None = None,
               timeout: float = 90.0) -> Path:
    """Render `html_path` with headless Chromium into `png_path` (`width` px wide). With
    height=None the page is rendered in a tall window (6000 px) and the empty bottom is cropped,
    so the whole page is captured. Raises InputError when no browser is found, when the browser
    fails or writes nothing, or when the picture is blank (a single colour)."""
    import cv2

    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    if not html_path.is_file():
        raise InputError("no such report file", html_path)
    browser = find_browser()
    if browser is None:
        raise InputError(f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH; "
                         "install chromium or set ANYDEPTH_BROWSER)")
    window_height = int(height) if height else 6000
    with tempfile.TemporaryDirectory(prefix="anydepth-shot-") as scratch:
        shot = Path(scratch) / "shot.png"
        command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--mute-audio",
                   f"--user-data-dir={Path(scratch) / 'profile'}", "--force-device-scale-factor=1",
                   f"--window-size={int(width)},{window_height}", f"--screenshot={shot}", html_path.as_uri()]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise InputError(f"{Path(browser).name} did not finish within {timeout:.0f} s", html_path) from None
        if not shot.is_file() or shot.stat().st_size == 0:
            errors = [line for line in (result.stderr or "").splitlines() if line.strip()]
            reason = errors[-1].strip() if errors else f"exit status {result.returncode}"
            raise InputError(f"{Path(browser).name} wrote no screenshot ({reason})", html_path)
        image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{Path(browser).name} wrote an unreadable screenshot", html_path)
        if np.all(image == image[0, 0]):
            raise InputError("the screenshot is blank (a single colour): the page did not render", html_path)
        if height is None:
            image = _trim_bottom(image)
        return fileio.write_image(png_path, image, rgb=False)
