"""ONNX export at release and ONNX Runtime at inference, on the released student and real DFDC crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_space.cards import ONNX_FILE, render_model_card
from deepfake_space.detector import Detector
from deepfake_space.errors import ModelLoadError
from deepfake_space.report import ModelReport
from deepfake_space.runtime import ONNX_FILES, choose_runtime, sha256
from deepfake_space.synth import astronaut
from train.evaluate import update_config
from train.export_onnx import ParityError, export

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dfdc_faces"
RELEASED = ROOT / "models" / "student-kd"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not available")


def _copy_weights(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(RELEASED / name, target / name)
    return target


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict]:
    folder = _copy_weights(tmp_path_factory.mktemp("onnx") / "student-kd")
    record = export(folder, str(DATA), parity_crops=64, calibration_crops=64, val_limit=400)
    return folder, record


def test_export_writes_checked_files_and_their_record(exported):
    folder, record = exported
    assert json.loads((folder / ONNX_FILE).read_text()) == record
    assert record["fp32"]["max_abs_logit_diff"] <= 1e-4 and record["fp32"]["parity_crops"] == 64
    int8 = record["int8"]
    assert int8["validation_n"] == 400 and int8["calibration_crops"] == 64
    assert int8["released"] == (int8["val_auc_fp32"] - int8["val_auc_int8"] <= int8["max_allowed_drop"])
    for precision, name in ONNX_FILES.items():
        if precision == "int8" and not int8["released"]:
            assert not (folder / name).exists()
            continue
        assert record[precision]["sha256"] == sha256(folder / name)
    assert not list(folder.glob(".export-*")), "the staging folder is removed"
    card = render_model_card(folder).text
    assert "### ONNX Runtime" in card and record["fp32"]["sha256"] in card


def test_onnx_runtime_gives_the_verdicts_pytorch_gives(exported, tmp_path):
    folder, record = exported
    image = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(image)
    reports = {}
    for runtime in ("torch", "onnx"):
        with Detector({"student": str(folder)}, device="cpu", runtime=runtime) as detector:
            reports[runtime] = detector.analyze(image, cams=1).report
    torch_model, onnx_model = reports["torch"].models[0], reports["onnx"].models[0]
    assert (torch_model.runtime, onnx_model.runtime) == ("torch", "onnx fp32")
    assert onnx_model.p_fake == pytest.approx(torch_model.p_fake, abs=1e-4)
    assert onnx_model.verdict == torch_model.verdict and "gradcam" in onnx_model.latency_ms
    assert onnx_model.file_size_mb == pytest.approx((folder / "model.onnx").stat().st_size / 2**20, abs=1e-3)
    with Detector({"student": str(folder)}, device="cpu") as detector:
        assert detector.models[0].engine.name == "onnx fp32", "auto prefers ONNX Runtime on CPU"
    if record["int8"]["released"]:
        with Detector({"student": str(folder)}, device="cpu", precision="int8") as detector:
            report = detector.analyze(image).report
        assert report.models[0].runtime == "onnx int8" and 0.0 <= report.models[0].p_fake <= 1.0


def test_what_cannot_run_is_an_error_not_a_fallback(tmp_path):
    plain = _copy_weights(tmp_path / "plain")
    assert choose_runtime(plain).name == "torch", "auto without model.onnx runs PyTorch (and says so)"
    with pytest.raises(ModelLoadError, match="no model.onnx"):
        choose_runtime(plain, "onnx")
    with pytest.raises(ModelLoadError, match="int8 runs on ONNX Runtime only"):
        choose_runtime(plain, "auto", "int8")
    with pytest.raises(ModelLoadError, match="on cuda"):
        choose_runtime(plain, "onnx", device=torch.device("cuda"))
    with pytest.raises(ModelLoadError, match="runtime must be"):
        choose_runtime(plain, "tensorrt")


def test_an_export_of_other_weights_is_never_run(exported, tmp_path):
    """A release that copies new weights over an old export measures on PyTorch until it exports again."""
    folder, record = exported
    assert record["weights_sha256"] == sha256(folder / "model.safetensors")
    assert choose_runtime(folder).name == "onnx fp32"
    replaced = tmp_path / "replaced"
    shutil.copytree(folder, replaced)
    shutil.copy2(ROOT / "models" / "student-scratch" / "model.safetensors", replaced / "model.safetensors")
    assert choose_runtime(replaced).name == "torch"
    with pytest.raises(ModelLoadError, match="exported from other weights"):
        choose_runtime(replaced, "onnx")
    unrecorded = json.loads((folder / ONNX_FILE).read_text())
    del unrecorded["weights_sha256"]
    (replaced / ONNX_FILE).write_text(json.dumps(unrecorded))
    shutil.copy2(folder / "model.safetensors", replaced / "model.safetensors")
    with pytest.raises(ModelLoadError, match="naming the weights"):
        choose_runtime(replaced, "onnx", "int8")


def test_int8_that_costs_accuracy_is_not_written(tmp_path):
    folder = _copy_weights(tmp_path / "strict")
    record = export(folder, str(DATA), parity_crops=16, calibration_crops=16, val_limit=200, max_auc_drop=-1.0)
    assert record["int8"]["released"] is False and not (folder / "model.int8.onnx").exists()
    assert (folder / "model.onnx").is_file()
    assert "No int8 file" in render_model_card(folder).text


def test_fp32_parity_failure_writes_nothing(tmp_path):
    folder = _copy_weights(tmp_path / "parity")
    with pytest.raises(ParityError, match="differ from PyTorch"):
        export(folder, str(DATA), parity_crops=8, calibration_crops=8, val_limit=50, max_logit_diff=0.0)
    assert not list(folder.glob("*.onnx")) and not (folder / ONNX_FILE).exists()


def test_a_model_released_with_tta_gives_a_face_and_its_mirror_one_p_fake(exported, tmp_path):
    """A config with ``tta`` averages each face with its mirror on either engine, so a mirrored upload (a front
    camera's selfie) cannot change the verdict; without it the two differ."""
    plain, averaged = tmp_path / "plain", tmp_path / "tta"
    for folder, tta in ((plain, False), (averaged, True)):
        shutil.copytree(exported[0], folder)
        update_config(folder, {"tta": tta})
    image = astronaut()[40:232, 150:342]
    paths = [tmp_path / "face.png", tmp_path / "mirrored.png"]
    for path, pixels in zip(paths, (image, image[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)

    def scores(folder: Path, runtime: str, tta: bool | None = None) -> list[ModelReport]:
        with Detector({"m": str(folder)}, device="cpu", runtime=runtime, tta=tta) as detector:
            return [detector.analyze(path, whole_image=True).report.models[0] for path in paths]

    for runtime in ("torch", "onnx"):
        face, mirrored = scores(averaged, runtime)
        assert face.tta and face.p_fake == pytest.approx(mirrored.p_fake, abs=1e-6)
        face, mirrored = scores(plain, runtime)
        assert not face.tta and abs(face.p_fake - mirrored.p_fake) > 1e-4
    face, mirrored = scores(averaged, "onnx", tta=False)
    assert not face.tta and abs(face.p_fake - mirrored.p_fake) > 1e-4, "--no-tta overrides the config"
