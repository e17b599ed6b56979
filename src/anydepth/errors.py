"""Error hierarchy. Every user-facing problem is an `AnydepthError` whose message is one line
naming the file (when there is one) and the problem; the CLI prints it and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class AnydepthError(Exception):
    """Base class of the errors a user can fix (bad file, bad argument, missing weights)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(AnydepthError):
    """An input (image, array, argument) is unreadable, empty or of the wrong shape."""


class FormatError(AnydepthError):
    """A file is not in the format it claims to be, or is truncated or corrupt."""


class CheckpointError(AnydepthError):
    """A checkpoint cannot be loaded into the requested model (missing or unexpected keys,
    another encoder, unknown container)."""


class WeightsNotFoundError(AnydepthError):
    """Weights could not be found locally nor downloaded; the message says which file to put where."""


class AnydepthWarning(UserWarning):
    """Something a user should know but that does not stop the work (e.g. a checkpoint field the
    file does not state and that was taken as the authors' code takes it); the CLI prints it as
    one line."""
