"""Weight resolution: explicit path, cache folder, hub download, offline error."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from anydepth.errors import WeightsNotFoundError
from anydepth.foundation import load_depth_anything
from tests.support.weights import random_state_dict
from anydepth.foundation import weights as weights_module
from anydepth.foundation.weights import cache_dir, official_weights, resolve_weights


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("ANYDEPTH_CACHE", str(folder))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ANYDEPTH_OFFLINE", raising=False)
    return folder


@pytest.fixture
def local_hub(monkeypatch):
    """A local HTTP server standing in for the hub's endpoint (answers HEAD with 302, as the hub
    does for a resolve URL); returns the list of paths it was asked for."""
    asked = []

    class Hub(BaseHTTPRequestHandler):
        def do_HEAD(self):
            asked.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/blob")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield asked
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def vitp_file(tmp_path_factory):
    # a vits-named file would need 100 MB; a small encoder tests the same code path
    path = tmp_path_factory.mktemp("w") / "weights.pth"
    torch.save(random_state_dict("vitp", 0), path)
    return path


def test_release_table():
    release = official_weights("vits")
    assert (release.repo_id, release.filename) == ("depth-anything/Depth-Anything-V2-Small", "depth_anything_v2_vits.pth")
    metric = official_weights("vitl", "metric-vkitti")
    assert metric.filename == "depth_anything_v2_metric_vkitti_vitl.pth" and metric.max_depth == 80.0
    assert official_weights("vitb", layout="hf").repo_id == "depth-anything/Depth-Anything-V2-Base-hf"
    with pytest.raises(WeightsNotFoundError, match="unreleased"):
        official_weights("vitg")


def test_cache_dir_default_and_env(monkeypatch):
    monkeypatch.delenv("ANYDEPTH_CACHE", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "anydepth"
    monkeypatch.setenv("ANYDEPTH_CACHE", "/somewhere/else")
    assert cache_dir() == Path("/somewhere/else")


def test_explicit_path_wins(cache, vitp_file):
    assert resolve_weights("vits", vitp_file) == vitp_file
    with pytest.raises(WeightsNotFoundError, match="weights file not found"):
        resolve_weights("vits", cache / "nope.pth")


def test_cache_hit_in_repo_folder_or_flat(cache, vitp_file):
    target = cache / "Depth-Anything-V2-Small" / "depth_anything_v2_vits.pth"
    target.parent.mkdir(parents=True)
    shutil.copy(vitp_file, target)
    assert resolve_weights("vits") == target
    target.unlink()
    flat = cache / "depth_anything_v2_vits.pth"
    shutil.copy(vitp_file, flat)
    assert resolve_weights("vits") == flat


def test_offline_error_says_which_file_to_put_where(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as caught:
        resolve_weights("vitb")
    message = str(caught.value)
    assert "depth_anything_v2_vitb.pth" in message
    assert str(cache / "Depth-Anything-V2-Base" / "depth_anything_v2_vitb.pth") in message
    assert "huggingface.co/depth-anything/Depth-Anything-V2-Base" in message
    assert "--weights" in message and "\n" not in message


def test_download_goes_to_the_cache(cache, vitp_file, monkeypatch, local_hub):
    calls = []

    def fake_download(repo_id, filename, local_dir):
        calls.append((repo_id, filename, local_dir))
        destination = Path(local_dir) / filename
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(vitp_file, destination)
        return str(destination)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    path = resolve_weights("vits", variant="metric-hypersim")
    assert calls == [("depth-anything/Depth-Anything-V2-Metric-Hypersim-Small", "depth_anything_v2_metric_hypersim_vits.pth",
                      str(cache / "Depth-Anything-V2-Metric-Hypersim-Small"))]
    assert path.is_file()
    assert local_hub == ["/depth-anything/Depth-Anything-V2-Metric-Hypersim-Small/resolve/main/"
                         "depth_anything_v2_metric_hypersim_vits.pth"]  # the hub was asked once, then downloaded
    # the second call is a cache hit
    assert resolve_weights("vits", variant="metric-hypersim") == path and len(calls) == 1 and len(local_hub) == 1


def test_download_failure_becomes_the_same_advice(cache, monkeypatch, local_hub):
    import huggingface_hub

    def failing(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(WeightsNotFoundError, match=r"download failed: OSError\): put depth_anything_v2_vits.pth"):
        resolve_weights("vits")


def test_load_depth_anything_with_cached_release_sets_the_metric_head(cache, monkeypatch):
    torch.save(random_state_dict("vits", 0), cache.parent / "w.pth")
    target = cache / "Depth-Anything-V2-Metric-VKITTI-Small" / "depth_anything_v2_metric_vkitti_vits.pth"
    target.parent.mkdir(parents=True)
    shutil.move(cache.parent / "w.pth", target)
    model = load_depth_anything("vits", variant="metric-vkitti")
    assert model.config.head == "metric" and model.config.max_depth == 80.0
    assert weights_module.cached_path(official_weights("vits", "metric-vkitti")) == target


def test_no_network_ends_in_the_advice_within_seconds(cache, monkeypatch):
    """The hub client retries network errors with back-off for about half a minute; one probe with
    a short timeout says "no network" at once and never starts the download."""
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: calls.append(args))
    started = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as caught:
        resolve_weights("vits")
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert calls == []
    assert "no network" in message and "127.0.0.1" in message and "put depth_anything_v2_vits.pth" in message
    assert "--weights" in message and "\n" not in message


def test_a_hub_that_never_answers_is_bounded_by_the_probe_timeout(cache, monkeypatch):
    """A listening socket that never replies (a black-holed network) costs the probe's timeout."""
    import huggingface_hub.constants

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(weights_module, "HUB_PROBE_TIMEOUT_S", 0.5)
        started = time.perf_counter()
        with pytest.raises(WeightsNotFoundError, match="no network"):
            resolve_weights("vits")
        assert time.perf_counter() - started < 3.0
