"""train.ensemble: two released folders joined into one logit_average model, loaded, exported and carded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_space.cards import render_model_card
from deepfake_space.explain import gradcam
from deepfake_space.models import DeepfakeDetector, load_detector
from train.ensemble import main as ensemble_main
from train.export_onnx import export_fp32

torch.set_num_threads(1)


def _member(folder: Path, input_size: int, seed: int, **overrides) -> Path:
    """A released-looking resnet8 folder with its own random weights and a training record."""
    torch.manual_seed(seed)
    model = DeepfakeDetector.create("resnet8", input_size=input_size,
                                    training={"command": f"train {folder.name}", "val_auc": 0.9, "sbi": seed == 1},
                                    **overrides)
    model.save_pretrained(folder, config=model.config)
    return folder


@pytest.fixture()
def members(tmp_path: Path) -> list[Path]:
    return [_member(tmp_path / "big", 64, seed=0), _member(tmp_path / "small", 48, seed=1)]


def test_the_ensemble_is_the_mean_of_its_members_logits(members, tmp_path):
    out = tmp_path / "pair"
    ensemble_main(["--member", str(members[0]), "--member", str(members[1]), "--out", str(out)])
    pair = load_detector(out)
    assert pair.config.input_size == 64 and pair.config.arch_args["sizes"] == [64, 48]
    assert pair.config.cam_target_layer == "members.0.layer3,members.1.layer3"  # resnet8's layer, once per member
    assert len(pair.cam_target_layers) == 2
    big, small = (load_detector(m) for m in members)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = (big(x) + small(F.interpolate(x, size=(48, 48), mode="bicubic", antialias=True))) / 2
        torch.testing.assert_close(pair(x), expected, atol=1e-5, rtol=0)
        assert not torch.allclose(big(x), small(F.interpolate(x, size=(48, 48), mode="bicubic", antialias=True)))

    record = json.loads((out / "config.json").read_text())["training"]
    assert [m["input_size"] for m in record["members"]] == [64, 48]
    assert all(len(m["weights"]) == 16 for m in record["members"])
    assert record["command"].startswith("python -m train.ensemble --member")

    card = render_model_card(out).text
    assert "mean of 2 trained networks' logits" in card
    assert "| 2. `" in card and "| 48 px |" in card and "train small" in card


def test_grad_cam_averages_the_members_maps(members, tmp_path):
    out = tmp_path / "pair"
    ensemble_main(["--member", str(members[0]), "--member", str(members[1]), "--out", str(out)])
    pair = load_detector(out)
    x = torch.randn(2, 3, 64, 64)
    both = gradcam(pair, x)
    assert both.shape == (2, 64, 64) and both.min() >= 0 and both.max() <= 1 + 1e-6
    pair.config.cam_target_layer = "members.0.layer3"
    first_only = gradcam(pair, x)
    assert not np.allclose(both, first_only, atol=1e-3), "the second member's map is part of the average"


def test_the_ensemble_exports_to_onnx(members, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "pair"
    ensemble_main(["--member", str(members[0]), "--member", str(members[1]), "--out", str(out)])
    pair = load_detector(out)
    export_fp32(pair.net, pair.config.input_shape()[1:], tmp_path / "pair.onnx")
    session = ort.InferenceSession(str(tmp_path / "pair.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 64, 64)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), pair(x), atol=1e-4, rtol=0)


def test_members_that_preprocess_unlike_each_other_are_refused(tmp_path, capsys):
    first = _member(tmp_path / "a", 64, seed=0)
    other = _member(tmp_path / "b", 64, seed=1, face_margin=0.3)
    with pytest.raises(SystemExit) as exit_info:
        ensemble_main(["--member", str(first), "--member", str(other), "--out", str(tmp_path / "pair")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "face_margin" in err
    assert not (tmp_path / "pair").exists()


def test_one_member_or_a_missing_folder_is_an_error(tmp_path, capsys):
    first = _member(tmp_path / "a", 64, seed=0)
    with pytest.raises(SystemExit):
        ensemble_main(["--member", str(first), "--out", str(tmp_path / "pair")])
    assert "two or more" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        ensemble_main(["--member", str(first), "--member", str(tmp_path / "nope"), "--out", str(tmp_path / "pair")])
    assert exit_info.value.code == 2
    assert "is not a released model folder" in capsys.readouterr().err


def test_a_first_member_with_other_arch_args_is_refused(tmp_path, capsys):
    first = _member(tmp_path / "a", 64, seed=0, arch_args={"widths": [8, 16, 32]})
    second = _member(tmp_path / "b", 64, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        ensemble_main(["--member", str(first), "--member", str(second), "--out", str(tmp_path / "pair")])
    assert exit_info.value.code == 2
    assert "differ from resnet8's registered ones" in capsys.readouterr().err
