"""Folders of precomputed voxel grids: the E2Depth-processed MVSEC layout and EventScape (RAM-Net).

These hold no raw events, only voxel grids, depth and frames, each folder with a `timestamps.txt`
of lines "index seconds" (the authors' loaders read column 1); file k belongs to line k.

E2Depth (rpg_e2depth; MVSEC and DENSE):        EventScape (rpg_ramnet; CARLA):
  events/voxels/event_tensor_%010d.npy           events/voxels/<prefix>_%04d_voxel.npy
  depth/data/depth_%010d.npy                     depth/data/<prefix>_%04d_depth.npy
  rgb/davis/frame_%010d.png                      rgb/data/<prefix>_%04d_image.png
Voxel grids are (B, H, W) (B = 5; 260x346 for MVSEC) stored unnormalised; depth is metres
(E2Depth MVSEC: NaN = invalid; EventScape: clipped at 1000 m). A frame folder without its own
`timestamps.txt` is indexed like the depth folder, as the authors' loaders do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError
from anydepth.fileio import check_file, first_line, read_image_uint8
from anydepth.events.readers.timestamps import nearest_index, read_timestamp_file


@dataclass(frozen=True)
class VoxelLayout:
    """File naming of one layout: regular expressions whose group 1 is the file index."""

    name: str
    voxel_pattern: str
    depth_pattern: str
    frame_pattern: str
    frame_folders: tuple[str, ...]


LAYOUTS = (
    VoxelLayout("e2depth", r"^event_tensor_(\d+)\.npy$", r"^depth_(\d+)\.npy$", r"^frame_(\d+)\.png$",
                ("rgb/davis", "rgb/frames", "rgb/data")),
    VoxelLayout("eventscape", r"_(\d+)_voxel\.npy$", r"_(\d+)_depth\.npy$", r"_(\d+)_image\.png$",
                ("rgb/data", "rgb/frames", "rgb/davis")),
)
VOXEL_FOLDER = "events/voxels"
DEPTH_FOLDER = "depth/data"


def is_voxel_folder(folder: Path) -> bool:
    return (Path(folder) / VOXEL_FOLDER / "timestamps.txt").is_file()


def _index_files(folder: Path, pattern: str) -> dict[int, Path]:
    expression = re.compile(pattern)
    files = {}
    for path in folder.iterdir():
        match = expression.search(path.name)
        if match:
            files[int(match.group(1))] = path
    return files


class VoxelFolder:
    """One sequence folder of a voxel layout. `timestamps_us` (N,) int64 µs of the voxel grids;
    `depth_timestamps_us` / `frame_timestamps_us` (None when the folder has no depth / frames)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        voxel_folder = self.folder / VOXEL_FOLDER
        if not voxel_folder.is_dir():
            raise FormatError(f"no {VOXEL_FOLDER} folder: not an E2Depth / EventScape sequence", self.folder)
        self.timestamps_us = read_timestamp_file(voxel_folder / "timestamps.txt", column=-1, seconds=True)
        matches = [(len(_index_files(voxel_folder, layout.voxel_pattern)), layout) for layout in LAYOUTS]
        count, self.layout = max(matches, key=lambda item: item[0])
        if count == 0:
            raise FormatError("no voxel files (event_tensor_%010d.npy or *_%04d_voxel.npy)", voxel_folder)
        self._voxel_files = _index_files(voxel_folder, self.layout.voxel_pattern)

        self.depth_timestamps_us = self._depth_files = None
        depth_folder = self.folder / DEPTH_FOLDER
        if (depth_folder / "timestamps.txt").is_file():
            self.depth_timestamps_us = read_timestamp_file(depth_folder / "timestamps.txt", column=-1, seconds=True)
            self._depth_files = _index_files(depth_folder, self.layout.depth_pattern)

        self.frame_timestamps_us = self._frame_files = None
        for name in self.layout.frame_folders:
            frame_folder = self.folder / name
            files = _index_files(frame_folder, self.layout.frame_pattern) if frame_folder.is_dir() else {}
            if files:
                self._frame_files = files
                stamps = frame_folder / "timestamps.txt"
                self.frame_timestamps_us = (read_timestamp_file(stamps, column=-1, seconds=True) if stamps.is_file()
                                            else self.depth_timestamps_us)
                break
        if self.frame_timestamps_us is None:
            self._frame_files = None

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def read_voxels(self, index: int) -> np.ndarray:
        """Voxel grid `index` -> (B, H, W) float32, as stored (not normalised)."""
        voxels = _load_npy(self._file(self._voxel_files, index, "voxel grid"))
        if voxels.ndim != 3:
            raise FormatError(f"voxel grid has shape {voxels.shape}, expected (B, H, W)", self._voxel_files[index])
        return voxels.astype(np.float32, copy=False)

    def depth_index_at(self, t_us: int, max_gap_us: int) -> int | None:
        """The depth map nearest to t_us if within max_gap_us, else None."""
        if self.depth_timestamps_us is None:
            return None
        index = nearest_index(self.depth_timestamps_us, t_us)
        return index if abs(int(self.depth_timestamps_us[index]) - t_us) <= max_gap_us else None

    def read_depth(self, index: int) -> np.ndarray:
        """Depth map `index` -> (H, W) float32 metres, NaN where invalid (NaN, inf or <= 0 stored)."""
        path = self._file(self._depth_files, index, "depth map")
        depth_m = _load_npy(path)
        depth_m = np.squeeze(depth_m)
        if depth_m.ndim != 2:
            raise FormatError(f"depth has shape {depth_m.shape}, expected (H, W)", path)
        depth_m = depth_m.astype(np.float32)
        depth_m[~(np.isfinite(depth_m) & (depth_m > 0))] = np.nan
        return depth_m

    def frame_index_at(self, t_us: int) -> int | None:
        """The frame nearest to t_us, None when the folder has no frames."""
        return None if self.frame_timestamps_us is None else nearest_index(self.frame_timestamps_us, t_us)

    def read_frame(self, index: int) -> np.ndarray:
        """Frame `index` -> (H, W, 3) BGR uint8 or (H, W) grey uint8."""
        return read_frame(self._file(self._frame_files, index, "frame"))

    def _file(self, files: dict[int, Path] | None, index: int, what: str) -> Path:
        if files is None or index not in files:
            raise FormatError(f"no {what} file for index {index}", self.folder)
        return files[index]


def _load_npy(path: Path) -> np.ndarray:
    check_file(path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise FormatError(f"not a readable .npy array ({first_line(error)})", path) from None


def read_frame(path: str | Path) -> np.ndarray:
    """A frame file -> (H, W, 3) BGR uint8, or (H, W) uint8 for grey images; FormatError when it
    cannot be read (`fileio.read_image_uint8`)."""
    check_file(path)
    return read_image_uint8(path, FormatError)
