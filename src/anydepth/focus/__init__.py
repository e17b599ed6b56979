"""Depth from focus: focal-stack container and readers, focus volumes (DFV network, classical
measures), and test-time optimisation of Depth Anything V2 to metric depth."""

from anydepth.focus.dfv import DFV, DFVConfig, load_dfv, predict_stack, save_dfv
from anydepth.focus.measures import (
    FOCUS_MEASURES,
    DFFResult,
    dff_from_volume,
    focus_measure,
    focus_volume,
    refine_gaussian,
    softmax_volume,
)
from anydepth.focus.readers import (
    AlignmentError,
    CheckedStack,
    align_slices,
    check_focal_stacks,
    open_focal_stacks,
    read_ddff12,
    read_fod500,
    read_image_folder,
)
from anydepth.focus.stack import FocalStack, disparity_to_metres, metres_to_disparity
from anydepth.focus.tto import FAST, PAPER, TTOConfig, TTOResult, linear_baseline, run_tto

__all__ = [
    "DFV", "DFVConfig", "FAST", "FOCUS_MEASURES", "PAPER", "AlignmentError", "CheckedStack", "DFFResult", "FocalStack", "TTOConfig",
    "TTOResult", "align_slices", "check_focal_stacks", "dff_from_volume", "disparity_to_metres", "focus_measure", "focus_volume",
    "linear_baseline", "load_dfv", "metres_to_disparity", "open_focal_stacks", "predict_stack", "read_ddff12",
    "read_fod500", "read_image_folder", "refine_gaussian", "run_tto", "save_dfv", "softmax_volume",
]
