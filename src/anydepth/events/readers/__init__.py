"""Event file readers: one table of formats, and `open_events` that picks one by file signature,
HDF5 layout, extension or folder layout.

    with open_events("zurich_city_09_a/events/left/events.h5") as reader:
        for events in reader.windows(window_us=50_000):
            ...

Adding a format is one `ReaderEntry` here plus its module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anydepth.errors import FormatError, InputError, Remedy
from anydepth.events.readers.aedat2 import AEDAT2_SIGNATURE, Aedat2Reader
from anydepth.events.readers.aedat31 import AEDAT31_SIGNATURE, Aedat31Reader
from anydepth.events.readers.aedat4 import AEDAT4_SIGNATURE, Aedat4Reader
from anydepth.events.readers.base import EventReader, InMemoryEventReader
from anydepth.fileio import check_file, has_hdf5_signature, open_hdf5
from anydepth.events.readers.dsec import DsecEventReader
from anydepth.events.readers.mvsec import MvsecEventReader
from anydepth.events.readers.plain import H5EventReader, NpzEventReader, TxtEventReader
from anydepth.events.readers.research import (
    NPY_SIGNATURE,
    CsvEventReader,
    EventUtilsH5Reader,
    NpyEventReader,
    ZipTxtEventReader,
    is_event_utils,
    is_zipped_text,
    zip_members,
)
from anydepth.events.readers.rosbag import ROSBAG1_SIGNATURE, RosbagEventReader
from anydepth.events.readers.prophesee import (MetavisionH5Reader, PropheseeDatReader, PropheseeRawReader,
                                               is_metavision_h5, prophesee_signature)
from anydepth.events.readers.voxel_folders import is_voxel_folder

ZIP_SIGNATURE = b"PK\x03\x04"
VOXEL_FOLDER = Remedy(python="open it with anydepth.events.dataset.open_sequence", flag="",
                      cli="", elsewhere="`anydepth events eval`, `pseudolabel` and `train` read such folders")
ROS2_STORAGE_SIGNATURES = (b"SQLite format 3\x00", b"\x89MCAP")  # a ROS2 bag's .db3 / .mcap


def _is_dsec(names: set[str]) -> bool:
    return all(f"events/{k}" in names for k in "xytp") and ("ms_to_idx" in names or "t_offset" in names)


def _is_mvsec(names: set[str]) -> bool:
    return any(f"davis/{camera}/events" in names for camera in ("left", "right"))


def _is_plain_h5(names: set[str]) -> bool:
    return all(k in names for k in "xytp") or all(f"events/{k}" in names for k in "xytp")


@dataclass(frozen=True)
class ReaderEntry:
    """One format: its reader, file extensions, leading signature (None: plain text), and for
    formats that share a container (HDF5) the test on the container's dataset names."""

    name: str
    reader: type[EventReader]
    extensions: tuple[str, ...]
    signature: str  # "hdf5", "aedat4", "zip" or "" (none)
    claims: Callable[[set[str]], bool] | None
    description: str


READERS: dict[str, ReaderEntry] = {entry.name: entry for entry in (
    ReaderEntry("dsec", DsecEventReader, (".h5", ".hdf5"), "hdf5", _is_dsec,
                "DSEC events.h5 (events/{x,y,t,p}, ms_to_idx, t_offset)"),
    ReaderEntry("mvsec", MvsecEventReader, (".hdf5", ".h5"), "hdf5", _is_mvsec,
                "MVSEC *_data.hdf5 (davis/left/events)"),
    ReaderEntry("metavision-h5", MetavisionH5Reader, (".hdf5", ".h5"), "hdf5", is_metavision_h5,
                "Metavision HDF5 (CD/events, CD/indexes)"),
    ReaderEntry("h5", H5EventReader, (".h5", ".hdf5"), "hdf5", _is_plain_h5,
                "HDF5 with x, y, t, p datasets"),
    ReaderEntry("event_utils", EventUtilsH5Reader, (".h5", ".hdf5"), "hdf5", is_event_utils,
                "event_utils / E2VID-training HDF5 (events/xs, ys, ts, ps; images/)"),
    ReaderEntry("aedat4", Aedat4Reader, (".aedat4",), "aedat4", None, "AEDAT4 (iniVation DV)"),
    ReaderEntry("aedat2", Aedat2Reader, (".aedat",), "aedat2", None, "AEDAT 2.0 (jAER)"),
    ReaderEntry("aedat3.1", Aedat31Reader, (".aedat",), "aedat3.1", None, "AEDAT 3.1 (cAER)"),
    ReaderEntry("prophesee-raw", PropheseeRawReader, (".raw",), "prophesee-raw", None,
                "Prophesee EVT 2.0 / 2.1 / 3.0 .raw"),
    ReaderEntry("prophesee-dat", PropheseeDatReader, (".dat",), "prophesee-dat", None, "Prophesee .dat CD events"),
    ReaderEntry("npz", NpzEventReader, (".npz",), "zip", None, "NumPy .npz with x, y, t, p arrays"),
    ReaderEntry("txt", TxtEventReader, (".txt",), "", None, "text lines 't x y p' (t in seconds)"),
    ReaderEntry("txt.zip", ZipTxtEventReader, (".zip",), "zip", None, "E2VID zipped text (one .txt in a zip)"),
    ReaderEntry("rosbag", RosbagEventReader, (".bag",), "rosbag", None,
                "ROS1 .bag / ROS2 bag folder (dvs_msgs or prophesee_event_msgs EventArray)"),
    ReaderEntry("npy", NpyEventReader, (".npy",), "npy", None, "NumPy .npy: (N, 4) events or structured x, y, t, p"),
    ReaderEntry("csv", CsvEventReader, (".csv",), "", None, "CSV with a header naming x, y, t, p"),
)}


def _signature_of(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(AEDAT4_SIGNATURE):
        return "aedat4"
    if head.startswith(AEDAT2_SIGNATURE):
        return "aedat2"
    if head.startswith(AEDAT31_SIGNATURE):
        return "aedat3.1"
    if head.startswith(ZIP_SIGNATURE):
        return "zip"
    if head.startswith(ROSBAG1_SIGNATURE) or (head.startswith(ROS2_STORAGE_SIGNATURES)
                                              and (path.parent / "metadata.yaml").is_file()):
        return "rosbag"
    if head.startswith(NPY_SIGNATURE):
        return "npy"
    if has_hdf5_signature(path):
        return "hdf5"
    if head.startswith(b"%"):
        return prophesee_signature(path)
    return ""


def _hdf5_names(path: Path) -> set[str]:
    """Dataset and group names of an HDF5 file, two levels deep (FormatError if it cannot open)."""
    with open_hdf5(path) as h5file:
        names = set()
        for key in h5file:
            names.add(key)
            node = h5file.get(key)
            if hasattr(node, "keys"):
                for child in node:
                    names.add(f"{key}/{child}")
                    grandchild = node.get(child)
                    if hasattr(grandchild, "keys"):
                        names.update(f"{key}/{child}/{name}" for name in grandchild)
        return names


def detect_format(path: str | Path) -> str:
    """The name of the reader for a file (a key of READERS), from its signature and layout, or its
    extension when it has no signature. FormatError naming the file when none fits."""
    path = check_file(path)
    signature = _signature_of(path)
    suffix = path.suffix.lower()
    if signature == "hdf5":
        names = _hdf5_names(path)
        for entry in READERS.values():
            if entry.signature == "hdf5" and entry.claims(names):
                return entry.name
        found = ", ".join(sorted(names)[:8]) or "nothing"
        raise FormatError(f"HDF5 file of unknown layout: expected DSEC events/{{x,y,t,p}} + ms_to_idx, MVSEC "
                          f"davis/left/events, or x, y, t, p datasets; found {found}", path)
    if signature == "zip":  # by content: .npz holds .npy arrays, E2VID zips one .txt
        members = zip_members(path)
        if is_zipped_text(members):
            return "txt.zip"
        if members and all(name.endswith(".npy") for name in members):
            return "npz"
        raise FormatError(f"zip archive of unknown content ({', '.join(members[:4]) or 'empty'}): expected .npy "
                          "arrays (.npz) or one .txt of events (E2VID)", path)
    if signature:
        return next(entry.name for entry in READERS.values() if entry.signature == signature)
    for entry in READERS.values():
        if suffix in entry.extensions:
            if entry.signature:
                raise FormatError(f"not a {entry.description} file: its {entry.signature.upper()} signature is "
                                  f"missing (another format, or a damaged header)", path)
            return entry.name
    known = ", ".join(sorted({ext for entry in READERS.values() for ext in entry.extensions}))
    raise FormatError(f"unknown event file format (no known signature; readable: {known})", path)


def open_events(path: str | Path, format: str | None = None, **options) -> EventReader:
    """Open an event file (or a DSEC sequence folder) with the reader of its format.

    format: a key of READERS to skip detection ("dsec", "mvsec", "h5", "aedat4", "npz", "txt", ...);
    options: passed to the reader (e.g. rectify=True for DSEC, camera="right" for MVSEC,
    sensor_size=(h, w) / time_unit="s" for files that do not state them (None: not given),
    topic= for ROS bags, columns="txyp" for .npy, repair=True to sort and drop instead of
    raising). Close the reader (or use it as a context manager) to release the file.
    """
    path = Path(path)
    if path.is_dir():
        events_file = path / "events" / "left" / "events.h5"
        if events_file.is_file():
            path = events_file
        elif (path / "metadata.yaml").is_file():
            format = format or "rosbag"
        elif is_voxel_folder(path):
            raise FormatError("this folder holds precomputed voxel grids, not events", path, remedy=VOXEL_FOLDER)
        else:
            raise FormatError("folder is not a DSEC sequence (no events/left/events.h5)", path)
    if format is None:
        format = detect_format(path)
    elif format not in READERS:
        raise InputError(f"unknown event format {format!r}; known: {', '.join(READERS)}")
    reader = READERS[format].reader
    if options.get("sensor_size", 0) is None:  # None = "not given" for every format
        del options["sensor_size"]
    if "sensor_size" in options and "sensor_size" not in inspect.signature(reader).parameters:
        raise InputError(f"{format} files state their sensor size; sensor_size (--sensor-size) does not apply", path)
    if not options.get("repair", True):  # repair=False is every reader's default
        del options["repair"]
    if options.get("repair") and "repair" not in inspect.signature(reader).parameters:
        raise InputError(f"{format} files are read as stored; repair (--repair) does not apply", path)
    return reader(path, **options)


__all__ = [
    "READERS",
    "Aedat2Reader",
    "Aedat31Reader",
    "Aedat4Reader",
    "CsvEventReader",
    "DsecEventReader",
    "EventReader",
    "EventUtilsH5Reader",
    "H5EventReader",
    "InMemoryEventReader",
    "MetavisionH5Reader",
    "MvsecEventReader",
    "NpyEventReader",
    "NpzEventReader",
    "PropheseeDatReader",
    "PropheseeRawReader",
    "ReaderEntry",
    "RosbagEventReader",
    "TxtEventReader",
    "ZipTxtEventReader",
    "detect_format",
    "open_events",
]
