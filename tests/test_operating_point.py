"""Operating point: the validation-F1 threshold, moved up only when too many real photos would be called fake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfake_space.config import DetectorConfig
from train import operating_point as op
from train.cross_domain import Scored, write_scores
from train.evaluate import write_scores as write_val_scores
from train.metrics import false_fake_rate, pick_operating_point, pick_threshold

ROOT = Path(__file__).resolve().parents[1]
BAND = 0.1


def _validation(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping real / fake scores: the F1 optimum sits near 0.5."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * 400 + [1] * 400)
    return y, np.concatenate([rng.beta(2, 5, 400), rng.beta(5, 2, 400)])


def test_false_fake_rate_follows_the_verdict_rule():
    p = np.random.default_rng(1).random(500)
    config = DetectorConfig(arch="resnet8", threshold=0.4, uncertain_band=0.15)
    called_fake = np.mean([config.verdict(v) == "fake" for v in p])
    assert false_fake_rate(p, 0.4, 0.15) == pytest.approx(called_fake)
    assert false_fake_rate(np.array([0.55, 0.56]), 0.4, 0.15) == 0.5  # 0.55 sits on the band's edge: uncertain
    with pytest.raises(ValueError):
        false_fake_rate(np.array([]), 0.5)


def test_cap_broken_by_the_f1_optimum_moves_the_threshold_up_just_enough():
    y, p = _validation()
    photos = np.random.default_rng(2).beta(3, 3, 300)  # real photos scored like a coin flip: many over 0.6
    free = pick_threshold(y, p)
    assert false_fake_rate(photos, free, BAND) > 0.02
    out = pick_operating_point(y, p, photos, max_false_fake=0.02, band=BAND)
    assert out["moved_by_cap"] and out["cap_met"]
    assert out["uncertain_band"] == BAND and out["threshold"] > free
    assert out["photo_false_fake_rate"] == false_fake_rate(photos, out["threshold"], BAND) <= 0.02
    # the smallest threshold meeting the cap: a hair lower breaks it
    assert false_fake_rate(photos, out["threshold"] - 1e-6, BAND) > 0.02
    assert out["unconstrained"]["threshold"] == free
    assert out["unconstrained"]["photo_false_fake_rate"] > 0.02
    # the cap is paid for on validation, and the cost is reported
    assert out["dfdc_cost"]["fake_recall"] > 0 and out["dfdc_cost"]["macro_f1"] > 0
    assert out["dfdc_cost"]["macro_f1"] == pytest.approx(out["unconstrained"]["macro_f1"]
                                                         - out["validation"]["macro_f1"])
    assert out["validation"]["false_fake_rate"] <= out["unconstrained"]["false_fake_rate"]
    assert out["n_validation"] == 800 and out["n_photos"] == 300


def test_cap_already_met_leaves_the_f1_threshold_unchanged():
    y, p = _validation()
    photos = np.random.default_rng(3).uniform(0.0, 0.3, 300)
    out = pick_operating_point(y, p, photos, max_false_fake=0.02, band=BAND)
    assert not out["moved_by_cap"] and out["cap_met"]
    assert out["threshold"] == pick_threshold(y, p)
    assert out["validation"] == {k: v for k, v in out["unconstrained"].items() if k != "photo_false_fake_rate"}
    assert out["dfdc_cost"] == {"macro_f1": 0.0, "fake_recall": 0.0}
    assert out["photo_false_fake_rate"] == 0.0


def test_threshold_is_clipped_and_an_unmeetable_cap_is_reported():
    y, p = _validation()
    out = pick_operating_point(y, p, np.full(50, 0.95), max_false_fake=0.0, band=BAND)
    assert out["threshold"] == pytest.approx(0.85) and out["cap_met"]  # the photos sit on the band's edge
    out = pick_operating_point(y, p, np.full(50, 0.999), max_false_fake=0.0, band=0.01)
    assert out["threshold"] == 0.98 and not out["cap_met"]  # 0.989 would be needed: past the 0.98 clip
    assert out["photo_false_fake_rate"] == 1.0
    with pytest.raises(ValueError, match="band"):
        pick_operating_point(y, p, np.full(5, 0.1), band=0.6)


def _score_files(tmp_path: Path, photos: np.ndarray) -> tuple[Path, Path]:
    y, p = _validation()
    val = tmp_path / "val.csv"
    write_val_scores(val, np.arange(len(y)), [f"v{i // 4}" for i in range(len(y))], y, p)
    rows = [Scored(f"{i}.jpg", "real", "ok", {"student-kd": float(v)}) for i, v in enumerate(photos)]
    rows.append(Scored("noface.jpg", "real", "no_face", {"student-kd": None}, "No face was found"))
    photo_csv = tmp_path / "photo_scores.csv"
    write_scores(photo_csv, rows, ["student-kd"])
    return val, photo_csv


def test_cli_writes_threshold_and_band_with_provenance(tmp_path, capsys):
    model = tmp_path / "student-kd"
    model.mkdir()
    shutil.copy(ROOT / "models" / "student-kd" / "config.json", model / "config.json")
    before = json.loads((model / "config.json").read_text())
    val, photo_csv = _score_files(tmp_path, np.random.default_rng(2).beta(3, 3, 300))
    op.main(["--model", str(model), "--val-scores", str(val), "--photo-scores", str(photo_csv),
             "--max-false-fake", "0.05", "--band", "0.08", "--write"])
    printed = capsys.readouterr().out
    assert "DFDC cost of the cap" in printed
    after = json.loads((model / "config.json").read_text())
    result = json.loads(printed[printed.index("{"):])
    assert after["threshold"] == result["threshold"] and after["uncertain_band"] == 0.08
    assert result["photos_unscored"] == 1 and result["n_photos"] == 300 and result["photo_false_fake_rate"] <= 0.05
    picked = after["training"].pop("threshold_picked_on")
    assert picked["split"] == "validation" and picked["n"] == 800 and picked["max_false_fake"] == 0.05
    assert picked["unconstrained_threshold"] < after["threshold"]
    for key in set(before) - {"threshold", "uncertain_band", "training"}:
        assert after[key] == before[key], key
    before["training"].pop("threshold_picked_on", None)  # the released config records its own pick
    assert after["training"] == before["training"]
    DetectorConfig(**{**after, "training": {}})  # still loads


def test_cli_without_write_leaves_the_config_and_names_a_missing_column(tmp_path):
    model = tmp_path / "teacher"
    model.mkdir()
    shutil.copy(ROOT / "models" / "student-kd" / "config.json", model / "config.json")
    before = (model / "config.json").read_text()
    val, photo_csv = _score_files(tmp_path, np.full(10, 0.05))
    with pytest.raises(ValueError, match="no scores for model 'teacher'"):
        op.choose(model, val, photo_csv)
    result = op.choose(model, val, photo_csv, name="student-kd")
    assert not result["moved_by_cap"] and (model / "config.json").read_text() == before
