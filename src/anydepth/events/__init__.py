"""Event cameras: the event container, file readers, aligned samples and representations."""

from anydepth.events.container import EventArray, concatenate

__all__ = ["EventArray", "concatenate"]
