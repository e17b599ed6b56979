"""Event-based depth students (E2Depth, EReFormer, DepthAnyEvent, DepthAnyEvent-R): one
interface (`EventDepthModel`, `DepthStream`) and one registry (`load_model`)."""

from anydepth.eventdepth.base import DepthStream, EventDepthModel
from anydepth.eventdepth.registry import MODELS, load_model, save_model

__all__ = ["MODELS", "DepthStream", "EventDepthModel", "load_model", "save_model"]
