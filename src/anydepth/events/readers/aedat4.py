"""AEDAT4 files (iniVation DV; LZ4/ZSTD-compressed flatbuffer packets), decoded with `aedat`.

AEDAT4 has no index for random access, so the reader decodes the file once and holds the chosen
event stream in memory (about 13 bytes per event: x, y uint16, t int64, p int8); IMU, trigger and
frame streams are skipped. Timestamps are the file's µs (Unix time); polarity `on` -> 1, off -> 0;
the sensor size comes from the stream description (height, width).
"""

from __future__ import annotations

from pathlib import Path

import aedat
import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import InMemoryEventReader
from anydepth.events.readers.files import check_file, first_line

AEDAT4_SIGNATURE = b"#!AER-DAT4.0"


class Aedat4Reader(InMemoryEventReader):
    """The events of one AEDAT4 stream, decoded into memory at opening.

    stream_id: which event stream (default: the lowest-numbered one). repair: sort and drop events
    outside the sensor instead of raising.
    """

    format_name = "aedat4"

    def __init__(self, path: str | Path, stream_id: int | None = None, repair: bool = False):
        path = check_file(path)
        with open(path, "rb") as handle:
            if handle.read(len(AEDAT4_SIGNATURE)) != AEDAT4_SIGNATURE:
                raise FormatError("not an AEDAT4 file (no '#!AER-DAT4.0' header)", path)
        try:
            decoder = aedat.Decoder(str(path))
            streams = decoder.id_to_stream()
        except Exception as error:  # the Rust decoder raises RuntimeError / OSError
            raise FormatError(f"truncated or corrupt AEDAT4 file ({first_line(error)})", path) from None
        event_streams = {key: value for key, value in streams.items() if value.get("type") == "events"}
        if not event_streams:
            kinds = ", ".join(sorted(str(value.get("type")) for value in streams.values())) or "none"
            raise FormatError(f"no event stream in the AEDAT4 file (streams: {kinds})", path)
        if stream_id is None:
            stream_id = min(event_streams)
        elif stream_id not in event_streams:
            raise InputError(f"stream {stream_id} is not an event stream (event streams: {sorted(event_streams)})", path)
        description = event_streams[stream_id]
        super().__init__(path, (int(description["height"]), int(description["width"])))
        self.stream_id = stream_id
        packets = []
        try:
            for packet in decoder:
                if packet["stream_id"] == stream_id and "events" in packet:
                    packets.append(packet["events"])
        except Exception as error:
            raise FormatError(f"truncated or corrupt AEDAT4 file ({first_line(error)})", path) from None
        if packets:
            events = np.concatenate(packets)
            arrays = (events["x"], events["y"], events["t"].astype(np.int64), events["on"])
        else:
            arrays = (np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.int8))
        self._hold(arrays, repair)
