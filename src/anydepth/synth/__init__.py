"""Synthetic sequences with exact ground truth: scenes, an event simulator, thin-lens focal stacks,
and writers of the datasets' on-disk layouts."""

from anydepth.fileio import read_exr, write_exr
from anydepth.synth.esim import EventSimulator, simulate_events
from anydepth.synth.focus_writers import (
    DDFF12_FOCUS_DISPARITIES,
    FOD500_FOCUS_DISTANCES_M,
    ddff12_focus_distances_m,
    write_ddff12_h5,
    write_fod500_folder,
    write_phone_folder,
)
from anydepth.synth.thin_lens import (
    DDFF12_DISPARITY_SCALE,
    LENS_PRESETS,
    FocalStack,
    ThinLens,
    blur_sigma_px,
    circle_of_confusion,
    depth_to_disparity,
    disparity_to_depth,
    focal_stack,
    get_lens,
    render_gather,
    render_layered,
)
from anydepth.synth.writers import depth_to_disparity_png, write_dsec_sequence, write_e2depth_folder, write_mvsec_pair

__all__ = [
    "DDFF12_DISPARITY_SCALE",
    "DDFF12_FOCUS_DISPARITIES",
    "FOD500_FOCUS_DISTANCES_M",
    "LENS_PRESETS",
    "FocalStack",
    "ThinLens",
    "blur_sigma_px",
    "circle_of_confusion",
    "ddff12_focus_distances_m",
    "depth_to_disparity",
    "disparity_to_depth",
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
