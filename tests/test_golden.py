"""Golden values: the released weights on committed crops and a committed video, through the detector (PyTorch and
ONNX Runtime) and through ``train.evaluate``, against P(fake) values committed with the weights.

A change to preprocessing, face cropping, tracking or loading that moves any P(fake) by more than 1e-4 fails here
instead of passing silently. After a deliberate change (or a new release), rewrite the values and commit them:

    GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from deepfake_space.model_choice import MODELS_DIR
from deepfake_space.detector import Detector
from deepfake_space.examples import face_crops
from train.evaluate import evaluate

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = GOLDEN / "expected.json"
VIDEO = GOLDEN / "moving_face.mp4"  # examples.write_moving_face_video of examples/real_1.jpg, 2 s at 8 fps, 320x240
TOLERANCE = 1e-4
RELEASED = sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model.safetensors").is_file())


def _detector_values(folder: Path, runtime: str) -> dict[str, float]:
    with Detector({"m": str(folder)}, device="cpu", runtime=runtime) as detector:
        values = {c.path.name: detector.analyze(c.path, whole_image=True).report.models[0].p_fake
                  for c in face_crops()}
        video = detector.analyze(VIDEO).report
    assert video.status == "ok", video.message
    values[VIDEO.name] = video.models[0].p_fake
    return values


def _evaluate_values(folder: Path, tmp: Path) -> dict[str, float]:
    """``train.evaluate`` on the crops as a real/ fake/ image folder, per file."""
    data = tmp / "crops"
    crops = face_crops()
    for c in crops:
        (data / c.path.stem.split("_")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(c.path, data / c.path.stem.split("_")[0] / c.path.name)
    scores = tmp / "scores.csv"
    evaluate(str(folder), str(data), split="train", scores=scores, n_boot=10, latency_runs=1, progress=False)
    with scores.open(newline="") as f:
        rows = list(csv.DictReader(f))
    order = sorted((data / "real").iterdir()) + sorted((data / "fake").iterdir())  # as load_split lists them
    assert len(rows) == len(order)
    return {path.name: float(row["p_fake"]) for path, row in zip(order, sorted(rows, key=lambda r: int(r["index"])))}


def current_values(tmp: Path) -> dict:
    values = {}
    for name in RELEASED:
        folder = MODELS_DIR / name
        values[name] = {"detector": _detector_values(folder, "torch"), "evaluate": _evaluate_values(folder, tmp / name)}
        if (folder / "model.onnx").is_file():
            values[name]["onnx"] = _detector_values(folder, "onnx")
    return values


@pytest.fixture(scope="module")
def values(tmp_path_factory) -> dict:
    return current_values(tmp_path_factory.mktemp("golden"))


def test_released_models_reproduce_their_golden_values(values):
    if os.environ.get("GOLDEN_UPDATE"):
        EXPECTED.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"rewrote {EXPECTED}")
    expected = json.loads(EXPECTED.read_text())
    assert sorted(expected) == RELEASED, "every released model has golden values (GOLDEN_UPDATE=1 to add them)"
    for name, paths in expected.items():
        for path, files in paths.items():
            assert sorted(values[name][path]) == sorted(files), (name, path)
            for file, p in files.items():
                assert values[name][path][file] == pytest.approx(p, abs=TOLERANCE), (name, path, file)


def test_onnx_runtime_matches_pytorch_on_the_same_files(values):
    for name, paths in values.items():
        if "onnx" in paths:
            for file, p in paths["detector"].items():
                assert paths["onnx"][file] == pytest.approx(p, abs=TOLERANCE), (name, file)


def test_a_face_crop_gets_the_same_score_in_the_app_as_in_evaluation(values):
    """``--whole-image`` (the app's "already a face crop") preprocesses exactly as training and evaluation do."""
    for name, paths in values.items():
        for file, p in paths["evaluate"].items():
            assert paths["detector"][file] == pytest.approx(p, abs=TOLERANCE), (name, file)
