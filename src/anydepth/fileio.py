"""Files, for both pipelines: checks, HDF5, images (PNG, JPEG, TIFF, OpenEXR) and one-line errors.

Every reader here raises `InputError` (a path that is not there, or not a file) or `FormatError`
(a file that is there but cannot be read as what it claims) with the file and one line saying why;
`first_line` makes that line out of a library's exception. Every writer writes atomically
(`anydepth.atomic`). Heavy libraries (OpenCV, Pillow, h5py) are imported where they are used, so a
module that needs only `first_line` or `check_file` does not pay for them.

OpenEXR: OpenCV's EXR codec is optional (and absent from this environment's OpenCV 5 wheel), so
`write_exr` writes the format itself (single-part scanline, uncompressed) and `read_exr` reads
uncompressed, RLE, ZIPS and ZIP scanline files; both checked against the OpenEXR library.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from pathlib import Path

import numpy as np

from anydepth.atomic import atomic_write
from anydepth.errors import AnydepthError, FormatError, InputError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


# --------------------------------------------------------------------------- errors and checks

def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, stripped (h5py, OpenCV and YAML
    messages span several); the exception's type name when the message is empty."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


@contextlib.contextmanager
def closing_on_error(resource):
    """Close `resource` (anything with `close()`) if the block raises, then re-raise: a reader whose
    set-up fails does not leak the file it opened."""
    try:
        yield resource
    except BaseException:
        resource.close()
        raise


def check_file(path: str | Path) -> Path:
    """InputError if `path` is not an existing file, FormatError if it is empty."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a file", path)
    if path.stat().st_size == 0:
        raise FormatError("empty file (0 bytes)", path)
    return path


def has_hdf5_signature(path: Path) -> bool:
    """True when the HDF5 signature is at offset 0, 512, 1024, 2048... (HDF5 user blocks)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset + 8 <= size:
            handle.seek(offset)
            if handle.read(8) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


# --------------------------------------------------------------------------- HDF5

def open_hdf5(path: str | Path, problem: str = "cannot open the HDF5 file, truncated or corrupt",
              signature: bool = True):
    """Open an HDF5 file for reading (an h5py.File), with one-line FormatErrors for empty,
    foreign, truncated or corrupt files. signature: check the file (`check_file`) and its HDF5
    signature first; without it only h5py's refusal is reported, as "<problem> (<h5py's reason>)"."""
    import hdf5plugin  # noqa: F401  (registers the Blosc filter before h5py opens DSEC files)
    import h5py

    path = Path(path)
    if signature:
        check_file(path)
        if not has_hdf5_signature(path):
            raise FormatError("not an HDF5 file (no HDF5 signature; another format, or a damaged header)", path)
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise FormatError(f"{problem} ({first_line(error)})", path) from None


def hdf5_keys(h5file) -> str:
    """The top-level names of an open HDF5 file, sorted and comma-separated ("nothing" if none)."""
    return ", ".join(sorted(h5file.keys())) or "nothing"


def require_dataset(h5file, key: str, path: Path, ndim: int | None = None, list_keys: bool = False):
    """The h5py.Dataset `key`, or a FormatError naming the missing key (with the file's top-level
    names when `list_keys`) or its wrong rank."""
    import h5py

    try:
        node = h5file.get(key)
    except (OSError, ValueError, KeyError) as error:
        raise FormatError(f"cannot read '{key}' ({first_line(error)})", path) from None
    if node is None:
        raise FormatError(f"missing dataset '{key}'" + (f" (has {hdf5_keys(h5file)})" if list_keys else ""), path)
    if not isinstance(node, h5py.Dataset):
        raise FormatError(f"'{key}' is a group, expected a dataset", path)
    if ndim is not None and node.ndim != ndim:
        raise FormatError(f"'{key}' has shape {node.shape}, expected {ndim} dimension(s)", path)
    return node


def read_dataset(dataset, selection, path: Path) -> np.ndarray:
    """dataset[selection] with HDF5 read failures (missing filter, corrupt chunk) as FormatError."""
    try:
        return np.asarray(dataset[selection])
    except (OSError, ValueError, RuntimeError) as error:
        raise FormatError(f"cannot read '{dataset.name}' ({first_line(error)})", path) from None


# --------------------------------------------------------------------------- images

@contextlib.contextmanager
def open_npz(path: str | Path):
    """An .npz archive (`np.load`, no pickles) whose file is closed however reading ends: numpy
    leaves the file open when its zip reader rejects a corrupt archive. ValueError when the file is
    an array (.npy) rather than an archive."""
    with open(path, "rb") as handle:
        archive = np.load(handle, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("an array, not an .npz archive")
        with archive:
            yield archive


def read_image_uint8(path: str | Path, error: type[AnydepthError] = InputError) -> np.ndarray:
    """An image file as uint8: (H, W) for grey images, (H, W, 3) BGR otherwise (16-bit values / 257,
    rounded; alpha dropped). `error` (with the file): a missing or unreadable file, another sample type."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise error("no such file", path)
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise error("not a readable image", path)
    if image.dtype == np.uint16:
        image = uint16_to_uint8(image)
    elif image.dtype != np.uint8:
        raise error(f"unsupported image sample type {image.dtype}", path)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return np.ascontiguousarray(image[..., :3] if image.ndim == 3 else image)


def read_image_bgr(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) BGR uint8 (grey images repeated), for Depth Anything's input;
    InputError when it cannot be read (`read_image_uint8`)."""
    image = read_image_uint8(path)
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def uint16_to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit samples as 8-bit: value / 257, rounded (65535 -> 255), the inverse of 8 -> 16-bit
    widening by 257."""
    return np.round(np.asarray(image) / 257.0).astype(np.uint8)


def read_rgb(path: Path, reduce: int = 1) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image file (a focus slice); TIFF through Pillow, others through
    OpenCV (with its fast reduced decoding for reduce 2, 4 or 8). FormatError when it cannot be read."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    if path.suffix.lower() in (".tif", ".tiff"):
        from PIL import Image

        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError, EOFError, struct.error) as error:
            raise FormatError(f"not a readable image ({first_line(error)})", path) from None
        return rgb if reduce == 1 else cv2.resize(rgb, None, fx=1 / reduce, fy=1 / reduce, interpolation=cv2.INTER_AREA)
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, flags) if data.size else None
    if bgr is None:
        raise FormatError("not a readable image (truncated or corrupt)", path)
    return np.ascontiguousarray(bgr[..., ::-1])


def find_images(inputs: list[str | Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files and folders (recursively) into (image path, output stem relative to --out).

    Returns (images, problems): a missing input or a folder without images is a problem line, and
    the other inputs still go on. Files named explicitly are kept whatever their extension (a
    non-image then fails at read time with its own message).
    """
    images: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            images += [(p, p.relative_to(path).with_suffix("")) for p in found]
        elif path.is_file():
            images.append((path, Path(path.stem)))
        else:
            problems.append(f"{path}: no such file or folder")
    return images, problems


def write_image(path: str | Path, image: np.ndarray, rgb: bool = True, quality: int = 95) -> Path:
    """Write an image atomically, the format by the extension: (H, W, 3) uint8 RGB (BGR with
    rgb=False) or (H, W) uint8 / uint16 grey. PNG, JPEG (`quality`) and the rest through OpenCV;
    TIFF (RGB uint8) through Pillow, uncompressed. Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff") and image.ndim == 3:
        from PIL import Image

        rgb_image = np.ascontiguousarray(image if rgb else image[..., ::-1])
        return atomic_write(path, lambda temporary: Image.fromarray(rgb_image, mode="RGB").save(temporary, format="TIFF"))
    encoded = encode_image(suffix, image, rgb, quality)
    if encoded is None:
        raise InputError("could not write image", path)
    return atomic_write(path, lambda temporary: Path(temporary).write_bytes(encoded))


def encode_image(suffix: str, image: np.ndarray, rgb: bool = True, quality: int = 95) -> bytes | None:
    """The bytes of an image file of type `suffix` (".png", ".jpg", ...) through OpenCV:
    (H, W, 3) uint8 RGB (BGR with rgb=False), (H, W, 4) RGBA (BGRA) or (H, W) grey; None when
    OpenCV cannot encode it."""
    import cv2

    if image.ndim == 3 and rgb:
        image = image[..., [2, 1, 0, 3]] if image.shape[2] == 4 else image[..., ::-1]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(image), params)
    return encoded.tobytes() if ok else None


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """np.save atomically. Returns the path."""

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    return atomic_write(Path(path), write)



# --------------------------------------------------------------------------- OpenEXR

_EXR_MAGIC = 20000630
_EXR_PIXEL_TYPES = {"uint": (0, np.dtype("<u4")), "half": (1, np.dtype("<f2")), "float": (2, np.dtype("<f4"))}
_EXR_COMPRESSIONS = {0: ("none", 1), 1: ("rle", 1), 2: ("zips", 1), 3: ("zip", 16)}


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def exr_bytes(channels: dict[str, np.ndarray], pixel_type: str = "half") -> bytes:
    """An uncompressed single-part scanline OpenEXR file holding `channels` (name -> (H, W) array,
    all the same shape) stored as `pixel_type` "half", "float" or "uint"."""
    if pixel_type not in _EXR_PIXEL_TYPES:
        raise InputError(f"EXR pixel type must be one of {', '.join(_EXR_PIXEL_TYPES)}, got {pixel_type!r}")
    if not channels:
        raise InputError("an EXR file needs at least one channel")
    type_code, dtype = _EXR_PIXEL_TYPES[pixel_type]
    names = sorted(channels)  # the format requires alphabetical channel order
    planes = [np.asarray(channels[name]) for name in names]
    shape = planes[0].shape
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0 or any(p.shape != shape for p in planes):
        raise InputError(f"EXR channels must be non-empty (H, W) arrays of one shape, got {[p.shape for p in planes]}")
    height, width = shape
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", type_code, 0, 1, 1) for n in names) + b"\0"
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = (struct.pack("<ii", _EXR_MAGIC, 2)
              + _attribute("channels", "chlist", chlist)
              + _attribute("compression", "compression", b"\0")
              + _attribute("dataWindow", "box2i", window)
              + _attribute("displayWindow", "box2i", window)
              + _attribute("lineOrder", "lineOrder", b"\0")
              + _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0))
              + b"\0")
    # One block per scanline: int32 y, int32 byte count, then each channel's row in name order.
    rows = np.stack([p.astype(dtype) for p in planes], axis=1)  # (H, C, W)
    line_bytes = len(names) * width * dtype.itemsize
    first_block = len(header) + 8 * height
    offsets = first_block + np.arange(height, dtype="<u8") * (8 + line_bytes)
    blocks = np.empty((height, 8 + line_bytes), np.uint8)
    blocks[:, :8] = np.stack([np.arange(height, dtype="<i4"), np.full(height, line_bytes, "<i4")], axis=1).view(np.uint8)
    blocks[:, 8:] = np.ascontiguousarray(rows).reshape(height, -1).view(np.uint8)
    return header + offsets.astype("<u8").tobytes() + blocks.tobytes()


def write_exr(path: str | Path, channels: dict[str, np.ndarray], pixel_type: str = "half") -> Path:
    """Write `exr_bytes(channels, pixel_type)` to path atomically."""
    data = exr_bytes(channels, pixel_type)
    return atomic_write(Path(path), lambda temporary: Path(temporary).write_bytes(data))


def _undo_zip_predictor(data: bytes) -> np.ndarray:
    """OpenEXR's RLE / ZIP byte post-processing undone: delta decoding, then de-interleaving."""
    buffer = np.frombuffer(data, np.uint8).astype(np.int64)
    buffer[1:] -= 128
    decoded = (np.cumsum(buffer) & 0xFF).astype(np.uint8)
    half = (decoded.size + 1) // 2
    out = np.empty_like(decoded)
    out[0::2] = decoded[:half]
    out[1::2] = decoded[half:]
    return out


def _rle_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        count = struct.unpack_from("<b", data, i)[0]
        i += 1
        if count < 0:
            out += data[i:i - count]
            i -= count
        else:
            out += bytes([data[i]]) * (count + 1)
            i += 1
    return bytes(out)


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    """Read a single-part scanline OpenEXR file: name -> (H, W) array (float16 for half, float32,
    uint32). Compressions: none, RLE, ZIPS, ZIP; others (PIZ, PXR24, B44, DWA...) and tiled or
    multi-part files raise FormatError, and so does a truncated or corrupt file ("corrupt EXR
    file (<reason>)" when the damage shows only as a failed decode)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        return _parse_exr(path.read_bytes(), path)
    except (struct.error, zlib.error, ValueError, IndexError, OverflowError, MemoryError) as error:
        raise FormatError(f"corrupt EXR file ({first_line(error)})", path) from None


def _parse_exr(data: bytes, path: Path) -> dict[str, np.ndarray]:
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _EXR_MAGIC:
        raise FormatError("not an OpenEXR file", path)
    version = struct.unpack_from("<i", data, 4)[0]
    if version & 0x200 or version & 0x1000 or version & 0x800:
        raise FormatError("tiled, multi-part or deep EXR files are not supported", path)
    position, attributes = 8, {}
    try:
        while data[position] != 0:
            name_end = data.index(b"\0", position)
            kind_end = data.index(b"\0", name_end + 1)
            size = struct.unpack_from("<i", data, kind_end + 1)[0]
            start = kind_end + 5
            attributes[data[position:name_end].decode()] = data[start:start + size]
            position = start + size
    except (IndexError, ValueError, struct.error) as error:
        raise FormatError(f"truncated EXR header ({error})", path) from None
    position += 1
    channels, chlist, i = [], attributes.get("channels", b""), 0
    while i < len(chlist) and chlist[i] != 0:
        end = chlist.index(b"\0", i)
        type_code, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", chlist, end + 1)
        if (x_sampling, y_sampling) != (1, 1):
            raise FormatError("subsampled EXR channels are not supported", path)
        dtype = {code: dt for code, dt in _EXR_PIXEL_TYPES.values()}.get(type_code)
        if dtype is None:
            raise FormatError(f"unknown EXR pixel type {type_code}", path)
        channels.append((chlist[i:end].decode(), dtype))
        i = end + 17
    if not channels or "dataWindow" not in attributes or "compression" not in attributes:
        raise FormatError("EXR header lacks channels, dataWindow or compression", path)
    compression = attributes["compression"][0]
    if compression not in _EXR_COMPRESSIONS:
        raise FormatError(f"EXR compression {compression} is not supported (none, RLE, ZIPS, ZIP only)", path)
    method, lines_per_block = _EXR_COMPRESSIONS[compression]
    x_min, y_min, x_max, y_max = struct.unpack("<iiii", attributes["dataWindow"])
    width, height = x_max - x_min + 1, y_max - y_min + 1
    planes = {name: np.empty((height, width), dtype) for name, dtype in channels}
    line_bytes = sum(width * dtype.itemsize for _, dtype in channels)
    block_count = (height + lines_per_block - 1) // lines_per_block
    offsets = np.frombuffer(data, "<u8", block_count, position)
    for offset in offsets:
        y, size = struct.unpack_from("<ii", data, int(offset))
        payload = data[int(offset) + 8:int(offset) + 8 + size]
        first = y - y_min
        lines = min(lines_per_block, height - first)
        expected = lines * line_bytes
        if len(payload) != size:
            raise FormatError("truncated EXR pixel data", path)
        if size < expected:  # compressed block (a block that would not shrink is stored raw)
            raw = _rle_decode(payload) if method == "rle" else zlib.decompress(payload) if method != "none" else payload
            payload = _undo_zip_predictor(raw).tobytes()
        if len(payload) != expected:
            raise FormatError("corrupt EXR block", path)
        cursor = 0
        for line in range(lines):
            for name, dtype in channels:
                count = width * dtype.itemsize
                planes[name][first + line] = np.frombuffer(payload, dtype, width, cursor)
                cursor += count
    return planes
