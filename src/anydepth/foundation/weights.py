"""Where Depth Anything V2 weights come from.

Resolution order: an explicit path; else the cache folder (`$ANYDEPTH_CACHE`, default
`~/.cache/anydepth`); else a download from the Hugging Face hub into that folder. Offline
(`HF_HUB_OFFLINE=1` or `ANYDEPTH_OFFLINE=1`, or no network) ends in a `WeightsNotFoundError` that
says which file to put where. Before downloading, one request with a short timeout checks that the
hub answers at all, so no network means that error within seconds (the hub client itself retries
network errors with back-off for about half a minute).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from anydepth.errors import InputError, WeightsNotFoundError

_SIZE_NAMES = {"vits": "Small", "vitb": "Base", "vitl": "Large"}
VARIANTS = ("relative", "metric-hypersim", "metric-vkitti")


@dataclass(frozen=True)
class OfficialWeights:
    """One released file: Hugging Face repo id and file name."""

    repo_id: str
    filename: str
    head: str = "relative"
    max_depth: float | None = None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"


def official_weights(encoder: str, variant: str = "relative", layout: str = "official") -> OfficialWeights:
    """The released file for an encoder ('vits', 'vitb', 'vitl'), variant ('relative',
    'metric-hypersim' (indoor, 20 m), 'metric-vkitti' (outdoor, 80 m)) and layout ('official'
    .pth, or 'hf' safetensors; relative only)."""
    if variant not in VARIANTS:
        raise InputError(f"unknown weights variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if encoder not in _SIZE_NAMES:
        note = " (the ViT-G weights are unreleased)" if encoder == "vitg" else ""
        raise WeightsNotFoundError(f"no released Depth Anything V2 weights for encoder {encoder!r}{note}; pass a file with --weights")
    size = _SIZE_NAMES[encoder]
    if layout == "hf":
        if variant != "relative":
            raise InputError("the Hugging Face '-hf' layout is used here for the relative models only")
        return OfficialWeights(f"depth-anything/Depth-Anything-V2-{size}-hf", "model.safetensors")
    if variant == "relative":
        return OfficialWeights(f"depth-anything/Depth-Anything-V2-{size}", f"depth_anything_v2_{encoder}.pth")
    dataset = variant.split("-")[1]
    repo = f"depth-anything/Depth-Anything-V2-Metric-{'Hypersim' if dataset == 'hypersim' else 'VKITTI'}-{size}"
    return OfficialWeights(repo, f"depth_anything_v2_metric_{dataset}_{encoder}.pth", "metric", 20.0 if dataset == "hypersim" else 80.0)


def cache_dir() -> Path:
    """`$ANYDEPTH_CACHE`, default `~/.cache/anydepth`."""
    return Path(os.environ.get("ANYDEPTH_CACHE") or Path.home() / ".cache" / "anydepth").expanduser()


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "ANYDEPTH_OFFLINE"))


HUB_PROBE_TIMEOUT_S = 3.0


def _hub_unreachable(release: OfficialWeights, timeout: float) -> str | None:
    """None when the hub (`HF_ENDPOINT`, default huggingface.co) answers a HEAD request for the
    file with any HTTP status, else why not, after at most about `timeout` seconds: one try, no
    retries, through the hub client's own session (its proxies and certificates). The request runs
    in a daemon thread because name resolution is not bounded by a socket timeout."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    url = f"{constants.ENDPOINT}/{release.repo_id}/resolve/main/{release.filename}"
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            get_session().head(url, timeout=timeout, follow_redirects=False)
            outcome.append(None)
        except Exception as error:  # refused, DNS failure, timeout, TLS, offline mode: all mean unreachable
            outcome.append(type(error).__name__)

    thread = threading.Thread(target=probe, name="anydepth-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    reason = outcome[0] if outcome else "no answer"
    return None if outcome and reason is None else f"no network: {constants.ENDPOINT} unreachable ({reason})"


def cached_path(release: OfficialWeights) -> Path:
    """Where the cache keeps a released file: <cache>/<repo name>/<file name> (so the '-hf' repos'
    identically named model.safetensors do not collide); the bare file name also counts."""
    return cache_dir() / release.repo_id.split("/")[-1] / release.filename


def resolve_weights(
    encoder: str = "vits",
    weights: str | Path | None = None,
    variant: str = "relative",
    layout: str = "official",
    download: bool = True,
) -> Path:
    """Path of a weights file for `encoder`, downloading it into the cache if needed."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError("weights file not found", path)
        return path
    release = official_weights(encoder, variant, layout)
    target = cached_path(release)
    for candidate in (target, cache_dir() / release.filename):
        if candidate.is_file():
            return candidate
    reason = "offline (HF_HUB_OFFLINE/ANYDEPTH_OFFLINE set)" if _offline() or not download else None
    if reason is None:
        reason = _hub_unreachable(release, HUB_PROBE_TIMEOUT_S)
    if reason is None:
        try:
            from huggingface_hub import hf_hub_download

            downloaded = hf_hub_download(release.repo_id, release.filename, local_dir=str(target.parent))
            return Path(downloaded)
        except Exception as error:  # network, auth, hub errors: all end in the same advice
            reason = f"download failed: {type(error).__name__}"
    raise WeightsNotFoundError(
        f"Depth Anything V2 {encoder} weights not found ({reason}): put {release.filename} "
        f"from {release.url} at {target}, set ANYDEPTH_CACHE to the folder that holds it, or pass --weights PATH"
    )
