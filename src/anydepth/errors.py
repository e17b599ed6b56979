"""Error hierarchy. Every user-facing problem is an `AnydepthError` whose message is one line
naming the file (when there is one) and the problem; the CLI prints it and exits non-zero."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Remedy:
    """A fix an error suggests, spelt for where the user is: `python` for a library call; at the
    command line `cli` where the subcommand has the flag whose argparse dest is `flag`, else
    `elsewhere` (which may name the file as {path})."""

    python: str
    flag: str
    cli: str
    elsewhere: str


REPAIR = Remedy(python="open with repair=True to sort and drop",
                flag="repair", cli="rerun with --repair to sort and drop",
                elsewhere="`anydepth events convert {path} repaired.h5 --repair` writes a sorted copy")


class AnydepthError(Exception):
    """Base class of the errors a user can fix (bad file, bad argument, missing weights).
    remedy: the fix to suggest, spelt as a Python option in str(error) and as a flag by
    `for_command`."""

    def __init__(self, message: str, path: str | Path | None = None, remedy: Remedy | None = None):
        self.path = None if path is None else str(path)
        self.message, self.remedy = message, remedy
        super().__init__(self._text(remedy.python if remedy else None))

    def _text(self, fix: str | None) -> str:
        body = f"{self.message} ({fix})" if fix else self.message
        return f"{self.path}: {body}" if self.path else body

    def for_command(self, flags: Container[str]) -> str:
        """The message as a subcommand with the argparse dests `flags` shows it: its remedy names a
        flag only where the subcommand has it."""
        if self.remedy is None:
            return str(self)
        fix = self.remedy.cli if self.remedy.flag in flags else self.remedy.elsewhere.format(path=self.path or "FILE")
        return self._text(fix)


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
