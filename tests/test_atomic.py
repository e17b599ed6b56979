"""Atomic writes and strict JSON."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from anydepth.atomic import atomic_write, json_ready, write_json


def test_json_ready_makes_strict_json():
    value = {"nan": float("nan"), "inf": np.float32(np.inf), "tuple": (1, np.int64(2)), "path": Path("a/b"),
             "nested": [{"x": np.float64(0.5), "ok": np.bool_(True)}], 3: None}
    assert json_ready(value) == {"nan": None, "inf": None, "tuple": [1, 2], "path": "a/b",
                                 "nested": [{"x": 0.5, "ok": True}], "3": None}


def test_write_json_is_atomic_and_readable(tmp_path):
    path = write_json(tmp_path / "out" / "r.json", {"score": float("nan"), "n": 2})
    assert json.loads(path.read_text()) == {"score": None, "n": 2}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(RuntimeError):
        atomic_write(path, lambda temporary: (Path(temporary).write_text("half"), (_ for _ in ()).throw(RuntimeError())))
    assert json.loads(path.read_text()) == {"score": None, "n": 2}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
