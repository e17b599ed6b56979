"""`anydepth.fileio` helpers shared by the readers: files closed whatever happens."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest

from anydepth.fileio import closing_on_error, open_npz


def test_open_npz_closes_the_file_however_reading_ends(tmp_path):
    """np.load leaves a corrupt archive's file open (a ResourceWarning when it is collected)."""
    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(3))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(good.read_bytes()[:40])  # a zip header, then nothing: numpy's zip reader fails
    array = tmp_path / "array.npy"
    np.save(array, np.arange(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_npz(good) as archive:
            assert archive["a"].tolist() == [0, 1, 2]
        for path, error in ((corrupt, Exception), (array, ValueError)):
            with pytest.raises(error):
                with open_npz(path):
                    pass
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_closing_on_error_closes_only_on_error():
    class Resource:
        closed = False

        def close(self):
            self.closed = True

    kept, failed = Resource(), Resource()
    with closing_on_error(kept) as resource:
        assert resource is kept
    with pytest.raises(KeyError):
        with closing_on_error(failed):
            raise KeyError("set-up failed")
    assert not kept.closed and failed.closed
