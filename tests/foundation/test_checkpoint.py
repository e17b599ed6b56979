"""Loading weights: official layout (strict), Hugging Face layout, anydepth containers, and the
one-line errors for files that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anydepth.errors import CheckpointError
from anydepth.foundation import (
    DepthAnythingV2,
    export_hf_folder,
    get_config,
    load_depth_anything_file,
    save_checkpoint,
)
from anydepth.foundation import hf_keys
from tests.support.weights import loaded_model, random_state_dict


@pytest.fixture(scope="module")
def vits_state():
    return random_state_dict("vits", seed=0)


def _forward(model, seed=0):
    x = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def test_official_pth_loads_strictly_and_infers_the_encoder(vits_state, tmp_path):
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(vits_state, path)
    model = load_depth_anything_file(path)
    assert model.config.encoder == "vits" and model.config.head == "relative"
    for key, value in vits_state.items():
        assert torch.equal(model.state_dict()[key], value)


def test_hub_safetensors_give_the_same_model(vits_state, tmp_path):
    reference = loaded_model("vits", vits_state)
    folder = export_hf_folder(reference, tmp_path / "Depth-Anything-V2-Small-hf")
    loaded = load_depth_anything_file(folder / "model.safetensors")
    torch.testing.assert_close(_forward(loaded), _forward(reference), rtol=0, atol=0)


def test_missing_and_unexpected_keys_are_named(vits_state, tmp_path):
    broken = dict(vits_state)
    broken.pop("depth_head.scratch.output_conv1.weight")
    broken["pretrained.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointError) as caught:
        load_depth_anything_file(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "1 missing keys (e.g. depth_head.scratch.output_conv1.weight)" in message
    assert "1 unexpected keys (e.g. pretrained.extra.weight)" in message


def test_checkpoint_of_another_encoder_is_refused(tmp_path):
    path = tmp_path / "depth_anything_v2_vitb.pth"
    with torch.device("meta"):
        shapes = DepthAnythingV2("vitb").state_dict()
    torch.save({k: torch.zeros(v.shape) for k, v in shapes.items()}, path)
    with pytest.raises(CheckpointError, match=r"holds vitb \(embed_dim 768, 12 blocks\), not the requested vits"):
        load_depth_anything_file(path, encoder="vits")


def test_wrong_shape_is_named(vits_state, tmp_path):
    bad = dict(vits_state)
    bad["depth_head.scratch.output_conv1.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "bad_shape.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="shape of depth_head.scratch.output_conv1.weight is"):
        load_depth_anything_file(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_corrupt_files_give_one_line(content, tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        load_depth_anything_file(path)
    assert str(caught.value).startswith(f"{path}: cannot read checkpoint")
    assert "\n" not in str(caught.value)


def test_truncated_official_file(vits_state, tmp_path):
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(vits_state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_depth_anything_file(path)


def test_foreign_state_dict_is_not_mistaken(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a Depth Anything V2 checkpoint"):
        load_depth_anything_file(path)
    path = tmp_path / "foreign.safetensors"
    save_file({"backbone.embeddings.cls_token": torch.zeros(1, 1, 8), "backbone.weird.weight": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="unexpected key 'backbone.weird.weight'"):
        load_depth_anything_file(path)


def test_anydepth_container_carries_a_custom_config(tmp_path):
    config = get_config("vitp", head="metric", max_depth=80.0)
    model = DepthAnythingV2(config)
    path = tmp_path / "teacher.pth"
    save_checkpoint(model, path)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary
    loaded = load_depth_anything_file(path)
    assert loaded.config == config
    torch.testing.assert_close(_forward(loaded), _forward(model), rtol=0, atol=0)


def test_metric_file_name_selects_the_metric_head(vits_state, tmp_path):
    for name, max_depth in [("depth_anything_v2_metric_vkitti_vits.pth", 80.0), ("depth_anything_v2_metric_hypersim_vits.pth", 20.0)]:
        torch.save(vits_state, tmp_path / name)
        model = load_depth_anything_file(tmp_path / name)
        assert model.config.head == "metric" and model.config.max_depth == max_depth


def test_training_container_and_ddp_prefix(vits_state, tmp_path):
    path = tmp_path / "latest.pth"
    torch.save({"model": {f"module.{k}": v for k, v in vits_state.items()}, "epoch": 3}, path)
    model = load_depth_anything_file(path, encoder="vits", head="metric", max_depth=20.0)
    assert model.config.head == "metric"
    assert torch.equal(model.state_dict()["pretrained.cls_token"], vits_state["pretrained.cls_token"])


def test_random_state_dict_is_deterministic():
    a, b = random_state_dict("vitp", seed=4), random_state_dict("vitp", seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["pretrained.cls_token"], random_state_dict("vitp", seed=5)["pretrained.cls_token"])
    assert np.isclose(float(a["pretrained.blocks.0.ls1.gamma"].mean()), 0.1, atol=0.02)


def test_hf_layout_detection():
    assert hf_keys.is_hf_layout({"backbone.embeddings.cls_token": 0})
    assert hf_keys.is_official_layout({"pretrained.cls_token": 0})


def test_loading_skips_the_random_initialisation_and_restores_it(tmp_path):
    """The loaders build without torch.nn.init's work (every parameter is then loaded); the
    initialisers are back afterwards, also when the block raises."""
    from anydepth.foundation.checkpoint import skip_weight_init

    initialiser = torch.nn.init.kaiming_uniform_
    with pytest.raises(RuntimeError, match="inside"):
        with skip_weight_init():
            weight = torch.full((4, 4), 7.0)
            assert torch.nn.init.kaiming_uniform_(weight) is weight and bool((weight == 7).all())
            raise RuntimeError("inside")
    assert torch.nn.init.kaiming_uniform_ is initialiser
    assert torch.nn.init.kaiming_uniform_(torch.full((4, 4), 7.0)).std() > 0

    state = random_state_dict("vitp", seed=4)
    torch.save(state, tmp_path / "vitp.pth")
    loaded = load_depth_anything_file(tmp_path / "vitp.pth")
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state.items())
