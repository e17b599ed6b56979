"""The HTML report builder: tables, figures, the one-file report, and a headless screenshot."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from anydepth.errors import InputError
from anydepth.report import Figure, Report, Table, find_browser, screenshot
from anydepth.viz import colorize, plot_curves
from tests.support import REPO



def metrics_table() -> Table:
    return Table("Metrics <test>", ["method", "AbsRel", "δ<1.25", "n"],
                 [["a & b", 0.12345, 0.8, 3], ["<script>x</script>", float("nan"), 0.9, 4], ["c", 0.1, None, 5]],
                 note="lower is \"better\"", highlight={"AbsRel": "min", "δ<1.25": "max"})


def decode_data_uri(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    data = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


def test_table_text_formats_numbers_nan_and_best():
    text = metrics_table().to_text()
    lines = text.splitlines()
    assert lines[0] == "Metrics <test>"
    assert "0.123" in text and "0.12345" not in text and "0.800" in text
    assert "0.100*" in text and "0.900*" in text and "0.123*" not in text
    row = next(line for line in lines if line.startswith("<script>"))
    assert "—" in row and "nan" not in row.lower().replace("<script>", "")
    assert re.search(r"\b4$", row)  # integers stay integers, right-aligned at the end
    assert len({len(line) for line in lines[1:5]}) <= 2  # fixed width
    assert "lower is \"better\"" in text and "best per column" in text


def test_table_html_escapes_and_bolds_best():
    page = metrics_table().to_html()
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "a &amp; b" in page and "Metrics &lt;test&gt;" in page and "&quot;better&quot;" in page
    assert "<strong>0.100</strong>" in page and "<strong>0.900</strong>" in page
    assert "<strong>0.123</strong>" not in page
    assert page.count("—") == 2


def test_table_rejects_bad_rows_and_highlight():
    with pytest.raises(InputError):
        Table("t", ["a", "b"], [[1]])
    with pytest.raises(InputError):
        Table("t", ["a"], [[1]], highlight={"b": "min"})
    with pytest.raises(InputError):
        Table("t", ["a"], [[1]], highlight={"a": "best"})
    assert "(no rows)" in Table("empty", ["a"], []).to_html()


def test_figure_array_round_trip_and_file(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    path = tmp_path / "pic.png"
    cv2.imwrite(str(path), image[..., ::-1])
    figure = Figure("Pictures & <co>", [("array", image), ("file <1>", path), ("grey", image[..., 0])], note="n")
    uris = figure.data_uris()
    np.testing.assert_array_equal(decode_data_uri(uris[0]), image)
    np.testing.assert_array_equal(decode_data_uri(uris[1]), image)
    assert uris[1].split(",", 1)[1] == base64.b64encode(path.read_bytes()).decode()
    np.testing.assert_array_equal(decode_data_uri(uris[2]), np.repeat(image[..., :1], 3, axis=-1))
    page = figure.to_html()
    assert "Pictures &amp; &lt;co&gt;" in page and "file &lt;1&gt;" in page and 'width="23" height="17"' in page
    with pytest.raises(InputError):
        Figure("x", [("missing", tmp_path / "nope.png")])
    with pytest.raises(InputError):
        Figure("x", [("bad", np.zeros((2, 2, 5), np.uint8))])


def test_report_is_one_self_contained_file(tmp_path):
    report = Report("Demo <1>", subtitle="sub & title", device="cpu")
    report.add_notice("no official DAv2 weights found: <teacher>", kind="warning")
    report.add_notice("just so you know")
    report.add_section("Events", metrics_table(), Figure("Depth", [("d", colorize(np.eye(8)))]), text="intro <p>")
    report.add_section("Focus", "a raw <b>paragraph</b>", Table("Focus", ["m", "x"], [["dfv", 1.5]]))
    report.add_section("Curves", Figure("Loss", [("loss", plot_curves({"train": [1.0, 0.5, 0.25]}, logy=True))]))
    with pytest.raises(InputError):
        report.add_notice("x", kind="shout")
    with pytest.raises(InputError):
        report.add_section("bad", 3.0)
    out = report.write(tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temporary left behind
    page = out.read_text(encoding="utf-8")
    assert page == report.to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http" not in page.lower().replace("http-equiv", "")  # no external resources at all
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    for heading in ("Events", "Focus", "Curves"):
        assert f"<h2>{heading}</h2>" in page
    assert "Demo &lt;1&gt;" in page and "sub &amp; title" in page and "&lt;teacher&gt;" in page
    assert 'class="notice warning"' in page and 'class="notice info"' in page
    assert "a raw &lt;b&gt;paragraph&lt;/b&gt;" in page and "intro &lt;p&gt;" in page
    assert page.count("data:image/png;base64,") == 2
    assert "python " in page and "device cpu" in page
    text = report.to_text()
    assert "Metrics <test>" in text and "Focus" in text and "[warning]" in text and "1.500" in text
    written = report.write_images(tmp_path / "pngs")
    assert [p.name for p in written] == ["events-depth-d.png", "curves-loss-loss.png"]
    np.testing.assert_array_equal(cv2.imread(str(written[0]))[..., ::-1], colorize(np.eye(8)))


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    report = Report("r")
    monkeypatch.setattr(Report, "to_html", lambda self: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        report.write(target)
    assert target.read_text(encoding="utf-8") == "old"
    monkeypatch.undo()

    import anydepth.report as module

    def failing_write(path, write):  # the writer fails half way: the old file must survive
        def half(temporary):
            Path(temporary).write_text("half", encoding="utf-8")
            raise OSError("disk full")
        return real_atomic(path, half)

    real_atomic = module.atomic_write
    monkeypatch.setattr(module, "atomic_write", failing_write)
    with pytest.raises(OSError):
        report.write(target)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_screenshot_without_browser_is_one_line_error(tmp_path, monkeypatch):
    page = Report("r").write(tmp_path / "r.html")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("ANYDEPTH_BROWSER", raising=False)
    with pytest.raises(InputError) as info:
        screenshot(page, tmp_path / "r.png")
    assert "no headless browser found" in str(info.value) and "\n" not in str(info.value)


def test_screenshot_renders_table_and_colours(tmp_path):
    if find_browser() is None:
        pytest.skip("no chromium/chrome binary on PATH")
    gradient = np.tile(np.linspace(0.0, 1.0, 256), (48, 1))
    report = Report("Screenshot test")
    report.add_section("Numbers", Table("t", ["a", "b"], [["x", 1.0], ["y", 2.0]], highlight={"b": "max"}),
                       Figure("Gradient", [("Spectral_r", colorize(gradient))], columns=1))
    page = report.write(tmp_path / "report.html")
    out = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "screenshot_report.py"), str(page), str(out),
                             "--width", "800"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)[..., ::-1].astype(int)
    assert image.shape[1] == 800 and 200 < image.shape[0] < 6000
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    assert ((red > 150) & (green < 80) & (blue < 100)).sum() > 500  # Spectral_r's dark red end
    assert ((blue > 150) & (red < 120)).sum() > 500  # and its blue end


def test_figure_files_get_short_names_and_keep_their_captions(tmp_path):
    caption = ("t=1200 ms · student: distilled DepthAnyEvent-R on the held-out target recording, inverse depth, "
               "aligned to the ground truth for display, near = red, far = blue, percentiles 2 to 98 of the truth")
    report = Report("r")
    report.add_section("Focal stack: focus, Depth Anything V2 and test-time optimisation",
                       Figure("Streaming prediction on a held-out target recording (inverse depth, near = red)",
                              [(caption, colorize(np.eye(4))), (caption, colorize(np.eye(4)))]),
                       Figure("Anything", [("x", colorize(np.eye(4)))], name="tto-loss"))
    names = [p.name for p in report.write_images(tmp_path)]
    assert names == ["focal-stack-focus-streaming-prediction-on-t-1200-ms-student-distilled.png",
                     "focal-stack-focus-streaming-prediction-on-t-1200-ms-student-distilled-2.png",
                     "focal-stack-focus-tto-loss-x.png"]
    assert all(len(name) < 100 for name in names)
    assert caption.replace("&", "&amp;") in report.to_html()
