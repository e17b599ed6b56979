"""What training asks of every student through `EventDepthModel` (no type switches in `distill`):
a batch of event images in and the raw output back at the image size, the loss spaces, labels in
those spaces and the fresh-start initialisation. Tiny configurations: the interface, not the
networks, is under test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.eventdepth import MODELS, SPACES, load_model
from anydepth.eventdepth.log_depth import depth_to_log_depth, log_depth_to_depth
from anydepth.events.container import EventArray

TINY = {
    "e2depth": {"base_num_channels": 8, "num_encoders": 2},
    "ereformer": {"embed_dim": 24, "depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4), "img_size": (64, 64)},
    "depthanyevent": {"encoder": "vitp", "input_size": (84, 112)},
    "depthanyevent-r": {"encoder": "vitp", "input_size": (84, 112)},
}


def _events(sensor=(30, 42), count=2000) -> EventArray:
    rng = np.random.default_rng(0)
    return EventArray.from_arrays(rng.integers(0, sensor[1], count), rng.integers(0, sensor[0], count),
                                  np.sort(rng.integers(0, 50_000, count)), rng.integers(0, 2, count), sensor_size=sensor)


def test_every_registered_student_has_a_tiny_config_here():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_batch_of_images_goes_in_and_comes_back_at_its_size(name):
    torch.manual_seed(0)
    model = load_model(name, **TINY[name])
    events = _events()
    image = torch.from_numpy(model.event_image(events))
    # prepare (one window) is prepare_images on a batch of one
    assert torch.equal(model.prepare(events), model.prepare_images(image[None]))
    images = torch.stack([image, image.flip(-1)])
    with torch.no_grad():
        raw, state = model(model.prepare_images(images), None)
        raw_map = model.raw_at_size(raw, images.shape[-2:])
        assert raw_map.shape == (2, 30, 42)
        assert (state is not None) == model.recurrent
        # the raw map is the output the model streams: depth (relative) or log depth (metric)
        streamed = model.to_log_depth(raw, (30, 42)) if model.output_kind == "metric" else model.to_depth(raw, (30, 42))
        assert torch.equal(raw_map, streamed)
        assert torch.isfinite(model.to_space(raw_map, model.native_space)).all()


@pytest.mark.parametrize("name", ["e2depth", "ereformer"])
def test_metric_students_train_in_every_space_and_their_labels_match(name):
    model = load_model(name, **TINY[name])
    assert model.native_space == "log_depth" and model.output_kind == "metric"
    log_depth = torch.tensor([[0.0, 0.5, 1.0]])
    torch.testing.assert_close(model.to_space(log_depth, "log_depth"), log_depth)
    depth = model.to_space(log_depth, "depth")
    torch.testing.assert_close(depth, log_depth_to_depth(log_depth))
    torch.testing.assert_close(model.to_space(log_depth, "disparity"), 1.0 / depth)
    labels = np.array([[np.nan, 1.0, 12.5552, 80.0, 200.0]], np.float32)
    np.testing.assert_allclose(model.depth_to_space(labels, "log_depth"), [[np.nan, 0.0, 0.5, 1.0, 1.0]], atol=1e-5)
    np.testing.assert_allclose(model.depth_to_space(labels, "disparity"), 1.0 / labels)
    np.testing.assert_array_equal(model.depth_to_space(labels, "depth"), labels)
    with pytest.raises(InputError, match="unknown space"):
        model.to_space(log_depth, "inverse")


@pytest.mark.parametrize("name", ["depthanyevent", "depthanyevent-r"])
def test_depthanyevent_trains_in_disparity_only(name):
    model = load_model(name, **TINY[name], activation="relu", inv_prediction=True, scale_factor=2.0)
    assert model.native_space == "disparity" and model.takes_dav2_weights
    raw_map = torch.tensor([[0.5, 1.0, 4.0]])  # 2 / (d + 1e-6): relative depth of disparity d
    torch.testing.assert_close(model.to_space(raw_map, "disparity"), torch.tensor([[4.0, 2.0, 0.5]]))
    for space in set(SPACES) - {"disparity"}:
        with pytest.raises(InputError, match="disparity space"):
            model.to_space(raw_map, space)
    with pytest.raises(InputError, match="no 'log_depth' labels"):
        model.depth_to_space(np.ones((2, 2), np.float32), "log_depth")


def test_a_fresh_relu_head_starts_open_and_others_are_left_alone():
    relu = load_model("depthanyevent", **TINY["depthanyevent"], activation="relu")
    relu.init_for_training()
    assert torch.equal(relu.depth_head.scratch.output_conv2[2].bias, torch.ones(1))
    softplus = load_model("depthanyevent", **TINY["depthanyevent"])
    before = softplus.depth_head.scratch.output_conv2[2].bias.clone()
    softplus.init_for_training()
    assert torch.equal(softplus.depth_head.scratch.output_conv2[2].bias, before)
    e2depth = load_model("e2depth", **TINY["e2depth"])
    assert not e2depth.takes_dav2_weights
    with pytest.raises(InputError, match="DepthAnyEvent students"):
        e2depth.init_from_dav2({})


def test_depth_to_log_depth_is_one_function_for_both_metric_students():
    depth = np.array([0.0, -1.0, 1.97042, 12.5552, 80.0, 200.0, np.nan])
    e2depth = depth_to_log_depth(depth)  # E2Depth's targets
    ereformer = depth_to_log_depth(depth, eps=1e-6)  # EReFormer's (official DENSE_Data.prepare_depth)
    np.testing.assert_allclose(e2depth, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, np.nan], atol=1e-5)
    np.testing.assert_allclose(ereformer, e2depth, atol=2e-5)  # eps / (α ratio): 1.1e-5 at 1.97 m
    assert e2depth[3] != ereformer[3]  # the eps is there
    torch.testing.assert_close(depth_to_log_depth(torch.from_numpy(depth)), torch.from_numpy(e2depth), equal_nan=True)
