"""Event-based depth students (E2Depth, EReFormer, DepthAnyEvent, DepthAnyEvent-R)."""

from anydepth.eventdepth.base import DepthStream, EventDepthModel

__all__ = ["DepthStream", "EventDepthModel"]
