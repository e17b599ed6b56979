"""Pre-processing identical to the official `infer_image`."""

import cv2
import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.foundation.transform import as_bgr_uint8, image_to_tensor, network_size, resize_prediction


@pytest.mark.parametrize(
    "height, width, input_size, expected",
    [
        (480, 640, 518, (518, 686)),  # NYU
        (260, 346, 266, (266, 350)),  # MVSEC as Depth AnyEvent feeds it
        (320, 640, 322, (322, 644)),  # DSEC crop
        (518, 518, 518, (518, 518)),
        (1000, 100, 518, (5180, 518)),
    ],
)
def test_network_size_known_answers(height, width, input_size, expected):
    assert network_size(height, width, input_size) == expected


def test_image_to_tensor_matches_hand_computation():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    x = image_to_tensor(bgr, input_size=28)
    assert x.shape == (1, 3, 28, 42) and x.dtype == torch.float32
    rgb = cv2.resize(bgr[..., ::-1] / 255.0, (42, 28), interpolation=cv2.INTER_CUBIC)
    expected = ((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_grey_and_bgra_inputs_become_bgr():
    grey = np.full((20, 30), 128, np.uint8)
    assert as_bgr_uint8(grey).shape == (20, 30, 3)
    assert as_bgr_uint8(np.zeros((20, 30, 4), np.uint8)).shape == (20, 30, 3)
    with pytest.raises(InputError, match="uint8"):
        as_bgr_uint8(np.zeros((20, 30, 3), np.float32))
    with pytest.raises(InputError, match="too small"):
        as_bgr_uint8(np.zeros((1, 30, 3), np.uint8))


def test_resize_prediction_align_corners_keeps_corners():
    prediction = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    resized = resize_prediction(prediction, 7, 10)
    assert resized.shape == (1, 7, 10)
    assert resized[0, 0, 0] == 0 and resized[0, -1, -1] == 11 and resized[0, 0, -1] == 3
