"""Finding the sequences of a dataset: a DSEC root (`train/<sequence>`), a folder of MVSEC pairs,
a folder of voxel folders, ROS bags (`.bag`, ROS2 bag folders), or one sequence."""

from __future__ import annotations

from pathlib import Path

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.voxel_folders import is_voxel_folder


def is_sequence(path: Path) -> bool:
    """True for a DSEC sequence folder, a voxel folder, an MVSEC *_data.hdf5 or a ROS bag (a ROS1
    `.bag`, a ROS2 bag folder with its metadata.yaml)."""
    if path.is_dir():
        return ((path / "events" / "left" / "events.h5").is_file() or is_voxel_folder(path)
                or (path / "metadata.yaml").is_file())
    return path.is_file() and (path.name.endswith("_data.hdf5") or path.suffix.lower() == ".bag")


def find_sequences(path: str | Path, max_depth: int = 3) -> list[Path]:
    """The sequences under `path` (itself when it is one), sorted by path. MVSEC pairs are found
    by their `*_data.hdf5`. Raises InputError when there is nothing there."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if is_sequence(path):
        return [path]
    found: list[Path] = []
    frontier = [path] if path.is_dir() else []
    for _ in range(max_depth):
        next_frontier = []
        for folder in frontier:
            for child in sorted(folder.iterdir()):
                if child.name.startswith("."):
                    continue
                if is_sequence(child):
                    found.append(child)
                elif child.is_dir():
                    next_frontier.append(child)
        frontier = next_frontier
    if not found:
        raise FormatError("no event sequences inside (DSEC sequence folders, MVSEC *_data.hdf5, voxel folders, "
                          "ROS bags)", path)
    return sorted(found)


def sequence_name(sequence: Path, root: str | Path) -> str:
    """A stable name for a sequence relative to its dataset root ('.' when it is the root), with
    MVSEC's `_data.hdf5` and ROS's `.bag` suffixes removed."""
    root = Path(root)
    name = sequence.name.removesuffix("_data.hdf5").removesuffix(".bag")
    if sequence == root:
        return name
    relative = sequence.parent.relative_to(root) if root in sequence.parents else Path()
    return (relative / name).as_posix()
