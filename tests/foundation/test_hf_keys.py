"""`export_hf_folder` writes what the hub's `depth-anything/Depth-Anything-V2-*-hf` repos hold, and
transformers (the installed version) loads it: `pipeline("depth-estimation")`,
`AutoModelForDepthEstimation`, `AutoImageProcessor`.

The reference for the file contents is the hub's Depth-Anything-V2-Small-hf `config.json` and
`preprocessor_config.json`, and transformers' conversion script (metric repos: `max_depth` 20
indoor, 80 outdoor, as integers). The reference for the outputs is our model run on the
pipeline's own `pixel_values` (Pillow resizing is transformers' business, not ours), followed by
the pipeline's post-processing (bicubic resize to the image size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anydepth.errors import InputError
from anydepth.foundation import DepthAnythingV2, export_hf_folder, get_config
from tests.support import requires
from tests.support.weights import loaded_model, random_state_dict
from anydepth.foundation import hf_keys

Image = pytest.importorskip("PIL.Image")
pytestmark = requires("transformers")


@pytest.fixture(scope="module")
def transformers():
    """Imported by the tests that use it, not at collection (seconds in every test worker)."""
    import transformers

    return transformers

# The hub's Depth-Anything-V2-Small-hf preprocessor_config.json (less transformers' internal
# `_valid_processor_keys` and the unused `size_divisor: null`).
HUB_PREPROCESSOR = {
    "do_normalize": True,
    "do_pad": False,
    "do_rescale": True,
    "do_resize": True,
    "ensure_multiple_of": 14,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "DPTImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "keep_aspect_ratio": True,
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 518, "width": 518},
}


@pytest.fixture(scope="module")
def vits_state():
    return random_state_dict("vits", seed=7)


def _model(encoder, state_dict, **overrides):
    # transformers interpolates the position embedding to the exact patch grid ("size")
    return loaded_model(get_config(encoder, pos_embed_interpolation="size", **overrides), state_dict)


def _image(height=60, width=80, seed=0):
    """A smooth random RGB picture (smooth, so that bicubic resizing does not clip much)."""
    coarse = np.random.default_rng(seed).random((height // 10, width // 10, 3))
    pixels = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return pixels


def test_default_export_holds_the_hub_files(vits_state, tmp_path, transformers):
    folder = export_hf_folder(_model("vits", vits_state), tmp_path / "Depth-Anything-V2-Small-hf")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert json.loads((folder / "preprocessor_config.json").read_text()) == HUB_PREPROCESSOR

    config = json.loads((folder / "config.json").read_text())
    hub = {  # fields of the hub's Depth-Anything-V2-Small-hf config.json
        "architectures": ["DepthAnythingForDepthEstimation"], "model_type": "depth_anything",
        "fusion_hidden_size": 64, "head_hidden_size": 32, "head_in_index": -1,
        "neck_hidden_sizes": [48, 96, 192, 384], "patch_size": 14, "reassemble_factors": [4, 2, 1, 0.5],
        "reassemble_hidden_size": 384,
    }
    assert {k: config[k] for k in hub} == hub
    hub_backbone = {
        "architectures": ["Dinov2Model"], "hidden_size": 384, "image_size": 518, "model_type": "dinov2",
        "num_attention_heads": 6, "out_features": ["stage3", "stage6", "stage9", "stage12"],
        "out_indices": [3, 6, 9, 12], "patch_size": 14, "reshape_hidden_states": False,
    }
    assert {k: config["backbone_config"][k] for k in hub_backbone} == hub_backbone
    assert config["depth_estimation_type"] == "relative" and config["max_depth"] == 1

    processor = transformers.AutoImageProcessor.from_pretrained(str(folder))
    assert processor.size["height"] == processor.size["width"] == 518
    assert processor.keep_aspect_ratio and processor.ensure_multiple_of == 14 and not processor.do_pad


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
@pytest.mark.parametrize("head, max_depth", [("relative", 20.0), ("metric", 20.0), ("metric", 80.0)])
def test_config_builds_the_same_architecture_in_transformers(encoder, head, max_depth, tmp_path, transformers):
    """config.json alone, through AutoConfig, builds a transformers model whose parameters have
    exactly the names and shapes of our exported weights (no weights needed: meta device)."""
    config = get_config(encoder, head=head, max_depth=max_depth)
    (tmp_path / "config.json").write_text(json.dumps(hf_keys.hf_config_dict(config)))
    hf_config = transformers.AutoConfig.from_pretrained(str(tmp_path))
    assert type(hf_config).__name__ == "DepthAnythingConfig"
    assert hf_config.depth_estimation_type == head
    if head == "metric":
        assert hf_config.max_depth == max_depth and isinstance(hf_config.max_depth, int)
    with torch.device("meta"):
        peer = transformers.AutoModelForDepthEstimation.from_config(hf_config)
        ours = DepthAnythingV2(config)
    # transformers >= 5 renames some modules in memory; compare in the official layout
    theirs = {k: tuple(v.shape) for k, v in hf_keys.hf_to_official(peer.state_dict()).items()}
    assert theirs == {k: tuple(v.shape) for k, v in ours.state_dict().items()}


@pytest.mark.parametrize("head, max_depth", [("relative", 20.0), ("metric", 20.0)])
def test_pipeline_matches_our_model(head, max_depth, vits_state, tmp_path, transformers):
    model = _model("vits", vits_state, head=head, max_depth=max_depth)
    folder = export_hf_folder(model, tmp_path / "export", input_size=98)  # 98 px: a fast pipeline
    image = _image()

    pipe = transformers.pipeline("depth-estimation", model=str(folder), device="cpu")
    assert type(pipe.model).__name__ == "DepthAnythingForDepthEstimation"
    assert pipe.model.config.depth_estimation_type == head
    result = pipe(image)
    predicted = result["predicted_depth"]
    assert tuple(predicted.shape) == (image.height, image.width)
    assert result["depth"].size == image.size

    pixel_values = pipe.preprocess(image)["pixel_values"]
    assert tuple(pixel_values.shape) == (1, 3, 70, 98)  # 60x80 -> width fits 98, height 73.5 -> 70

    # the processor does what the config says: Pillow bicubic, /255, ImageNet mean/std
    resized = np.asarray(image.resize((98, 70), Image.BICUBIC), dtype=np.float64) / 255.0
    normalised = (resized - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(pixel_values[0].permute(1, 2, 0).double().numpy(), normalised, atol=1e-5)

    with torch.no_grad():
        ours = model(pixel_values.float())
    ours_at_image = F.interpolate(ours[:, None], size=(image.height, image.width), mode="bicubic", align_corners=False)[0, 0]
    assert predicted.std() > 0.05 * predicted.abs().max() > 0  # informative, not constant or saturated
    torch.testing.assert_close(predicted, ours_at_image, rtol=1e-5, atol=1e-5 * float(ours.abs().max()))

    # the same folder through the Auto classes
    peer = transformers.AutoModelForDepthEstimation.from_pretrained(str(folder)).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder))
    assert type(peer).__name__ == "DepthAnythingForDepthEstimation"
    if head == "metric":
        assert peer.config.max_depth == 20
    inputs = processor(images=image, return_tensors="pt")
    torch.testing.assert_close(inputs["pixel_values"], pixel_values)
    with torch.no_grad():
        torch.testing.assert_close(peer(**inputs).predicted_depth, ours, rtol=1e-5, atol=1e-5 * float(ours.abs().max()))


def test_fractional_max_depth_is_refused_before_writing(vits_state, tmp_path):
    model = _model("vits", vits_state, head="metric", max_depth=12.5)
    with pytest.raises(InputError, match="max_depth 12.5 m cannot be exported"):
        export_hf_folder(model, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(InputError, match="input_size"):
        export_hf_folder(_model("vits", vits_state), tmp_path / "export", input_size=10)
