"""anydepth: Depth Anything V2 for cameras it was never trained on (event cameras, focal stacks)."""

from anydepth.errors import AnydepthError, CheckpointError, FormatError, InputError, WeightsNotFoundError

__version__ = "0.1.0"

__all__ = [
    "AnydepthError",
    "CheckpointError",
    "FormatError",
    "InputError",
    "WeightsNotFoundError",
    "__version__",
]
