"""Depth from focus: focal-stack container and readers, focus volumes (DFV network, classical
measures), test-time optimisation of Depth Anything V2 to metric depth, and the pipeline that
chains them (`estimate_depth`); the DDFF-12 table (`evaluate_ddff12_split`)."""

from anydepth.focus.dfv import DFV, DFVConfig, load_dfv, predict_stack, save_dfv
from anydepth.focus.evaluate import DDFF12Table, evaluate_ddff12_split
from anydepth.focus.measures import (
    FOCUS_MEASURES,
    DFFResult,
    dff_from_volume,
    focus_measure,
    focus_volume,
    refine_gaussian,
    softmax_volume,
)
from anydepth.focus.pipeline import TTO_MODES, FocusDepth, estimate_depth, write_focus_outputs
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
from anydepth.focus.stack import (
    DDFF12_DISPARITY_SCALE,
    DDFF12_FOCUS_DISPARITIES,
    FOCUS_UNITS,
    FOD500_FOCUS_DISTANCES_M,
    FocalStack,
    disparity_to_metres,
    in_unit,
    metres_to_disparity,
)
from anydepth.focus.tto import FAST, FASTEST, PAPER, TTOConfig, TTOResult, linear_baseline, run_tto

__all__ = [
    "DDFF12_DISPARITY_SCALE", "DDFF12_FOCUS_DISPARITIES", "DFV", "DFVConfig", "FAST", "FASTEST", "FOCUS_MEASURES",
    "FOCUS_UNITS", "FOD500_FOCUS_DISTANCES_M", "PAPER", "TTO_MODES", "AlignmentError", "CheckedStack", "DDFF12Table",
    "DFFResult", "evaluate_ddff12_split",
    "FocalStack", "FocusDepth", "TTOConfig", "TTOResult", "align_slices", "check_focal_stacks", "dff_from_volume",
    "disparity_to_metres", "estimate_depth", "focus_measure", "focus_volume", "in_unit", "linear_baseline", "load_dfv",
    "metres_to_disparity", "open_focal_stacks", "predict_stack", "read_ddff12", "read_fod500", "read_image_folder",
    "refine_gaussian", "run_tto", "save_dfv", "softmax_volume", "write_focus_outputs",
]
