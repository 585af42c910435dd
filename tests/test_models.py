"""Every registered architecture: builds, trains one step, saves and loads back exactly; strict loading;
the ImageNet weight mappings on a real photo; the student's size and cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from PIL import Image

from deepfake_space.config import INCEPTION_MEAN, INCEPTION_STD, DetectorConfig
from deepfake_space.errors import ModelLoadError
from deepfake_space.models import DeepfakeDetector, default_config, list_models, load_detector, load_init_weights
from deepfake_space.models.fusion import folded_copy
from deepfake_space.models.summary import count_macs, count_params

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "imagenet"
LITE0_WEIGHTS = WEIGHTS / "efficientnet-lite0-57934424.pth"
MOBILENET_WEIGHTS = WEIGHTS / "mobilenet_v2-b0353104.pth"
IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat

# Small enough to run a training step on a busy CPU; the architecture stays what it is.
SMALL: dict[str, dict] = {
    "efficientnet_lite0": {"input_size": 64},
    "efficientnet_b7": {"input_size": 64},  # timm's B7 has no width knob: 64M params, but 64 px is cheap
    "resnet8": {"input_size": 64},
    "resnet8_w24": {"input_size": 64},
    "dsnet_tiny": {"input_size": 64},
    "mobilenetv2_100": {"input_size": 64},
    "mobilenetv2_035": {"input_size": 64},
    "logit_average": {"input_size": 64, "arch_args": {"sizes": [64, 48]}},  # two EfficientNet-Lite0s
    "cross_efficient_vit": {"input_size": 64, "arch_args": {"img_size": 64, "dims": (32, 64), "depth": 1,
                                                            "heads": 2, "cross_depth": 1}},
    "temporal_hybrid_vit": {"input_size": 64, "num_frames": 2, "arch_args": {"img_size": 64, "depth": 1}},
    "hf_vit_base_patch16": {"input_size": 64, "arch_args": {"image_size": 64, "patch_size": 16, "hidden_size": 32,
                                                            "num_hidden_layers": 1, "num_attention_heads": 2,
                                                            "intermediate_size": 64}},
}


def _input(config: DetectorConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(config.input_shape(batch), generator=g)


def _json(config: DetectorConfig) -> dict:
    return json.loads(json.dumps(config.to_dict()))


def test_every_architecture_has_small_test_settings():
    assert set(list_models()) == set(SMALL)


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_forward_backward_and_round_trip(arch, tmp_path):
    torch.manual_seed(0)
    model = DeepfakeDetector.create(arch, **SMALL[arch])
    config = model.config
    assert config.arch == arch

    model.train()
    x, y = _input(config), torch.tensor([0, 1])
    logits = model(x)
    assert logits.shape == (2, 2)
    F.cross_entropy(logits, y).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    without_grad = [n for n, p in trainable if p.grad is None]
    assert not without_grad, f"parameters that got no gradient: {without_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert arch == "logit_average" or model.net.get_classifier() is not None  # an ensemble has one per member

    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        before = model(x)
    model.save_pretrained(tmp_path / arch, config=config)
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / arch).iterdir()}
    loaded = load_detector(tmp_path / arch)
    assert isinstance(loaded.config, DetectorConfig)
    assert _json(loaded.config) == _json(config)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), before)


def _trained_norms(model: DeepfakeDetector) -> DeepfakeDetector:
    """Give every BatchNorm statistics and an affine map away from the identity, as training would."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
                torch.nn.init.uniform_(m.bias, -0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_folding_batchnorm_keeps_outputs_params_and_cam_layer(arch):
    torch.manual_seed(0)
    model = _trained_norms(DeepfakeDetector.create(arch, **SMALL[arch]))
    x = _input(model.config)
    with torch.no_grad():
        before = model(x)
    params = model.num_params()
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    model.fold_batchnorm()
    with torch.no_grad():
        after = model(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    assert model.num_params() == params
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # the CNNs (and the ensemble of two): every norm folds, Grad-CAM's layer stays
    if arch.startswith(("resnet8", "dsnet", "efficientnet", "mobilenet", "logit_average")):
        assert norms > 0 and left == 0, f"{left} of {norms} BatchNorms left"
        assert all(isinstance(layer, torch.nn.Module) for layer in model.cam_target_layers)


class _NormBeforeConv(torch.nn.Module):
    """Registers its conv before its norm but applies the norm first: folding by registration order is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def test_folding_that_would_change_the_output_is_refused(caplog):
    net = _NormBeforeConv()
    net.bn.running_mean.fill_(1.0)
    net.bn.running_var.fill_(4.0)
    with caplog.at_level("WARNING", logger="deepfake_space.models.fusion"):
        kept = folded_copy(net, torch.randn(1, 4, 8, 8))
    assert kept is net and isinstance(net.bn, torch.nn.BatchNorm2d)
    assert "keeping the unfolded model" in caplog.text


def test_cam_target_layers_exist():
    for arch in list_models():
        with torch.device("meta"):  # built on meta at the default size: nothing is allocated
            model = DeepfakeDetector.create(arch)
        layers = model.cam_target_layers
        assert layers and all(isinstance(layer, torch.nn.Module) for layer in layers), arch


def test_default_config_merges_arch_args_and_refuses_unknown_names():
    cfg = default_config("efficientnet_b7", arch_args={"drop_rate": 0.1})
    assert cfg.arch_args == {"drop_rate": 0.1, "drop_path_rate": 0.2}
    assert default_config("efficientnet_b7").arch_args["drop_rate"] == 0.5  # the registry is untouched
    with pytest.raises(KeyError, match="unknown architecture"):
        default_config("resnet9000")


def test_temporal_model_takes_clips_and_single_images():
    model = DeepfakeDetector.create("temporal_hybrid_vit", **SMALL["temporal_hybrid_vit"]).eval()
    with torch.no_grad():
        clip = _input(model.config, batch=1)
        assert model(clip).shape == (1, 2)
        assert model(clip[:, 0]).shape == (1, 2)  # a plain image is a one-frame clip
        # the clip embedding is the mean over frames: a clip of one repeated frame == that frame
        frame = clip[:, :1]
        assert torch.allclose(model(frame.expand(-1, 2, -1, -1, -1)), model(frame[:, 0]), atol=1e-5)


# --- strict loading --------------------------------------------------------------------------------------

@pytest.fixture()
def saved_resnet8(tmp_path) -> Path:
    model = DeepfakeDetector.create("resnet8", input_size=64)
    model.save_pretrained(tmp_path / "r8", config=model.config)
    return tmp_path / "r8"


def test_strict_loading_rejects_a_missing_key(saved_resnet8):
    weights = saved_resnet8 / "model.safetensors"
    state = safetensors.torch.load_file(weights)
    state.pop("net.fc.bias")
    safetensors.torch.save_file(state, weights)
    with pytest.raises((ModelLoadError, RuntimeError)):
        load_detector(saved_resnet8)


def test_strict_loading_rejects_an_extra_key(saved_resnet8):
    weights = saved_resnet8 / "model.safetensors"
    state = safetensors.torch.load_file(weights)
    state["net.extra.weight"] = torch.zeros(3)
    safetensors.torch.save_file(state, weights)
    with pytest.raises((ModelLoadError, RuntimeError)):
        load_detector(saved_resnet8)


def test_loading_rejects_weights_of_another_shape(saved_resnet8):
    config = json.loads((saved_resnet8 / "config.json").read_text())
    config["arch_args"] = {"widths": [16, 32, 64]}
    (saved_resnet8 / "config.json").write_text(json.dumps(config))
    with pytest.raises((ModelLoadError, RuntimeError)):
        load_detector(saved_resnet8)


def test_missing_folder_and_missing_files_are_model_load_errors(tmp_path, saved_resnet8):
    with pytest.raises(ModelLoadError):
        load_detector(tmp_path / "does-not-exist")
    with pytest.raises(ModelLoadError):
        load_detector("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError):
        load_detector(tmp_path / "empty")
    (saved_resnet8 / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError):
        load_detector(saved_resnet8)


def test_config_is_read_from_a_folder_without_its_weights(tmp_path, saved_resnet8):
    loaded = load_detector(saved_resnet8).config
    (saved_resnet8 / "model.safetensors").unlink()
    assert DetectorConfig.from_folder(saved_resnet8) == loaded
    with pytest.raises(FileNotFoundError, match="no config.json"):
        DetectorConfig.from_folder(tmp_path)


def test_threshold_outside_zero_one_is_refused():
    with pytest.raises(ValueError):
        default_config("resnet8", threshold=1.0)


# --- ImageNet weight mappings, checked on a photo of a cat -----------------------------------------------

def _cat(size: int, resize: int, interpolation: Image.Resampling, mean, std) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    img = Image.fromarray(skimage_data.chelsea())
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), interpolation)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(__import__("numpy").asarray(img).copy()).permute(2, 0, 1).float() / 255
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).unsqueeze(0)


@pytest.mark.skipif(not LITE0_WEIGHTS.is_file(), reason=f"{LITE0_WEIGHTS} is not available")
def test_efficientnet_lite0_imagenet_mapping_recognises_a_cat():
    from deepfake_space.models.efficientnet import efficientnet_lite0, load_efficientnet_pytorch_weights

    net = efficientnet_lite0(num_classes=1000)
    load_efficientnet_pytorch_weights(net, LITE0_WEIGHTS, keep_classifier=True)
    with torch.no_grad():
        probs = net.eval()(_cat(224, 224, Image.Resampling.BICUBIC, INCEPTION_MEAN, INCEPTION_STD)).softmax(-1)[0]
    assert int(probs.argmax()) in IMAGENET_CATS
    assert float(probs[sorted(IMAGENET_CATS)].sum()) > 0.5


@pytest.mark.skipif(not LITE0_WEIGHTS.is_file(), reason=f"{LITE0_WEIGHTS} is not available")
def test_efficientnet_lite0_init_loads_the_backbone_into_the_detector():
    model = DeepfakeDetector.create("efficientnet_lite0")
    head = model.net.classifier.weight.clone()
    stem = model.net.conv_stem.weight.clone()
    load_init_weights("efficientnet_lite0", model.net, str(LITE0_WEIGHTS))
    assert torch.equal(model.net.classifier.weight, head)  # the 2-class head keeps its own init
    assert not torch.equal(model.net.conv_stem.weight, stem)


@pytest.mark.skipif(not MOBILENET_WEIGHTS.is_file(), reason=f"{MOBILENET_WEIGHTS} is not available")
def test_mobilenetv2_torchvision_weights_recognise_a_cat():
    from deepfake_space.config import IMAGENET_MEAN, IMAGENET_STD
    from deepfake_space.models.mobilenet import mobilenetv2_100

    net = mobilenetv2_100(num_classes=1000)
    load_init_weights("mobilenetv2_100", net, str(MOBILENET_WEIGHTS))  # the registered loader: backbone only
    state = torch.load(MOBILENET_WEIGHTS, map_location="cpu", weights_only=True)
    net.classifier.load_state_dict({k.removeprefix("classifier."): v for k, v in state.items()
                                    if k.startswith("classifier.")})
    with torch.no_grad():
        probs = net.eval()(_cat(224, 256, Image.Resampling.BILINEAR, IMAGENET_MEAN, IMAGENET_STD)).softmax(-1)[0]
    assert int(probs.argmax()) in IMAGENET_CATS
    assert float(probs[sorted(IMAGENET_CATS)].sum()) > 0.5


# --- the student's size and cost (a property of the architecture, not a timing) -------------------------

def _params_and_macs(arch: str) -> tuple[int, int]:
    config = default_config(arch)
    with torch.device("meta"):
        model = DeepfakeDetector(config)
    return count_params(model), count_macs(model, config)


def test_student_resnet8_has_at_most_0_2m_params():
    params, _ = _params_and_macs("resnet8")
    assert params <= 200_000


def test_student_resnet8_needs_20x_fewer_macs_than_efficientnet_lite0():
    _, student = _params_and_macs("resnet8")
    _, teacher = _params_and_macs("efficientnet_lite0")
    size = default_config("resnet8").input_size
    assert teacher >= 20 * student, (f"resnet8 {student / 1e6:.1f}M MACs at {size} px vs efficientnet_lite0 "
                                     f"{teacher / 1e6:.1f}M: only {teacher / student:.1f}x fewer")


@pytest.mark.parametrize("arch", ["resnet8", "hf_vit_base_patch16"])
def test_counting_on_meta_matches_counting_on_cpu(arch):
    """Attention included: on CPU the fused SDPA kernel would go uncounted without the math backend."""
    config = default_config(arch, **SMALL[arch])
    cpu = DeepfakeDetector(config)
    with torch.device("meta"):
        meta = DeepfakeDetector(config)
    assert count_macs(cpu, config) == count_macs(meta, config) > 0
    assert count_params(cpu) == count_params(meta) == cpu.num_params()


def test_macs_of_a_known_layer():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False))
    config = default_config("resnet8", input_size=10)
    assert count_macs(net, config) == 3 * 8 * 9 * 10 * 10
    assert count_params(net) == 3 * 8 * 9


def test_tiny_student_is_under_one_percent_of_the_teacher():
    tiny = DeepfakeDetector.create("dsnet_tiny").num_params()
    teacher = DeepfakeDetector.create("efficientnet_lite0").num_params()
    assert tiny <= 0.01 * teacher, (tiny, teacher)
