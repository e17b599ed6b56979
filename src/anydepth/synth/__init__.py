"""Synthetic sequences with exact ground truth: scenes, an event simulator, thin-lens focal stacks
(`anydepth.focus.FocalStack`s; the focus units and the data sets' focus tables live in
`anydepth.focus` too), and writers of the datasets' on-disk layouts."""

from anydepth.fileio import read_exr, write_exr
from anydepth.synth.esim import EventSimulator, simulate_events
from anydepth.synth.focus_writers import (
    ddff12_focus_distances_m,
    write_ddff12_h5,
    write_fod500_folder,
    write_phone_folder,
)
from anydepth.synth.thin_lens import (
    LENS_PRESETS,
    ThinLens,
    blur_sigma_px,
    circle_of_confusion,
    focal_stack,
    get_lens,
    render_gather,
    render_layered,
)
from anydepth.synth.writers import depth_to_disparity_png, write_dsec_sequence, write_e2depth_folder, write_mvsec_pair

__all__ = [
    "LENS_PRESETS",
    "ThinLens",
    "blur_sigma_px",
    "circle_of_confusion",
    "ddff12_focus_distances_m",
    "focal_stack",
    "get_lens",
    "read_exr",
    "render_gather",
    "render_layered",
    "write_ddff12_h5",
    "write_exr",
    "write_fod500_folder",
    "write_phone_folder",
    "EventSimulator",
    "depth_to_disparity_png",
    "simulate_events",
    "write_dsec_sequence",
    "write_e2depth_folder",
    "write_mvsec_pair",
]
