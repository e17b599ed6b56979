"""Event-based depth students (E2Depth, EReFormer, DepthAnyEvent, DepthAnyEvent-R): one
interface (`EventDepthModel`, `DepthStream`), one registry (`load_model`, `save_model`), streaming
over a recording, any sequence of windows or a live source (`predict_recording`,
`predict_windows`, `predict_live`), and what a user needs to feed precomputed inputs or read raw
outputs: the representations a model takes (`REPRESENTATIONS`), E2Depth's reflection padding
(`CropParameters`), the normalised-log-depth conversions (`log_depth_to_depth`,
`depth_to_log_depth`, with D_max `CLIP_DISTANCE_M` and α `REG_FACTOR`), the spaces a training loss
compares in (`SPACES`), the lower-bound resize of DepthAnyEvent (`network_size`) and its
initialisation from Depth Anything V2 (`init_from_dav2`)."""

from anydepth.eventdepth.base import OUTPUTS, REPRESENTATIONS, SPACES, DepthStream, EventDepthModel
from anydepth.eventdepth.depthanyevent import init_from_dav2
from anydepth.eventdepth.e2depth import CropParameters
from anydepth.eventdepth.live import LiveWindowDepth, predict_live
from anydepth.eventdepth.log_depth import CLIP_DISTANCE_M, REG_FACTOR, LogDepthModel, depth_to_log_depth, log_depth_to_depth
from anydepth.eventdepth.registry import MODELS, load_model, save_model
from anydepth.eventdepth.stream import WindowDepth, predict_recording, predict_windows
from anydepth.foundation.transform import network_size

__all__ = [
    "CLIP_DISTANCE_M", "MODELS", "OUTPUTS", "REG_FACTOR", "REPRESENTATIONS", "SPACES", "CropParameters", "DepthStream",
    "EventDepthModel", "LiveWindowDepth", "LogDepthModel", "WindowDepth", "depth_to_log_depth", "init_from_dav2",
    "load_model", "log_depth_to_depth", "network_size", "predict_live", "predict_recording", "predict_windows",
    "save_model",
]
