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
from train.metrics import FAKE_CUT_MAX, false_fake_rate, pick_operating_point, pick_threshold
from train.photo_robustness import UNSEEN

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


def test_degraded_photos_raise_only_the_fake_cut():
    """Clean photos meet the cap, the same photos at 1/4 resolution would not: the threshold and the real cut stay,
    the fake cut rises just far enough, and what lies between becomes "uncertain"."""
    y, p = _validation()
    rng = np.random.default_rng(3)
    clean = rng.uniform(0.0, 0.3, 300)
    degraded = {"jpeg60": clean + 0.05, "scale1/4": rng.beta(3, 3, 300)}
    out = pick_operating_point(y, p, clean, max_false_fake=0.02, band=BAND, p_degraded_photos=degraded)
    free = pick_threshold(y, p)
    assert out["threshold"] == free and not out["moved_by_cap"] and out["cap_met"]
    cut = out["fake_above"]
    assert cut > free + BAND and out["validation"]["fake_above"] == cut
    assert out["degraded_photos"]["scale1/4"]["fake_cut_needed"] == cut
    assert out["degraded_photos"]["jpeg60"]["fake_cut_needed"] < free + BAND  # met already: no say in the cut
    assert out["degraded_photos"]["scale1/4"]["false_fake_rate"] <= 0.02 < false_fake_rate(degraded["scale1/4"],
                                                                                          cut - 1e-6)
    # paid for in DFDC fake recall only: the bare threshold, and so macro-F1, do not move
    assert out["dfdc_cost"]["macro_f1"] == 0.0
    assert out["dfdc_cost"]["fake_recall"] == out["dfdc_cost_of_fake_cut"]["fake_recall"] > 0
    assert out["validation"]["uncertain_rate"] > out["unconstrained"]["uncertain_rate"]
    config = DetectorConfig("resnet8", threshold=out["threshold"], uncertain_band=BAND, fake_above=cut)
    assert config.real_cut == pytest.approx(free - BAND)
    assert [config.verdict(v) for v in (free - BAND - 1e-3, (free + BAND + cut) / 2, cut + 1e-3)] == [
        "real", "uncertain", "fake"]


def test_degraded_photos_within_the_cap_set_no_fake_cut_and_an_unmeetable_one_is_reported():
    y, p = _validation()
    clean = np.random.default_rng(3).uniform(0.0, 0.3, 300)
    out = pick_operating_point(y, p, clean, band=BAND, p_degraded_photos={"blur": clean})
    assert out["fake_above"] is None and out["cap_met"] and out["dfdc_cost_of_fake_cut"]["fake_recall"] == 0.0
    out = pick_operating_point(y, p, clean, max_false_fake=0.0, band=BAND,
                               p_degraded_photos={"blur": np.full(50, 0.9999)})
    assert out["fake_above"] == FAKE_CUT_MAX and not out["cap_met"]
    with pytest.raises(ValueError, match="fake_above"):
        DetectorConfig("resnet8", threshold=0.5, uncertain_band=BAND, fake_above=0.55)


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
    for key in set(before) - {"threshold", "uncertain_band", "fake_above", "training"}:
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


def _degraded_json(tmp_path: Path, scores: dict[str, np.ndarray], which: str = UNSEEN) -> Path:
    """A photo_robustness.json as ``train.photo_robustness`` writes it, with the per-face scores the cap reads."""
    path = tmp_path / "photo_robustness.json"
    path.write_text(json.dumps({"model": "models/student-kd", "which": which, "command": "python -m ...",
                                "degradations": {k: {"p_fake": v.tolist()} for k, v in scores.items()}}))
    return path


def test_cli_writes_the_fake_cut_from_degraded_photos(tmp_path, capsys):
    model = tmp_path / "student-kd"
    model.mkdir()
    shutil.copy(ROOT / "models" / "student-kd" / "config.json", model / "config.json")
    val, photo_csv = _score_files(tmp_path, np.random.default_rng(3).uniform(0.0, 0.3, 300))
    degraded = _degraded_json(tmp_path, {"scale1/4": np.random.default_rng(2).beta(3, 3, 300)})
    op.main(["--model", str(model), "--val-scores", str(val), "--photo-scores", str(photo_csv),
             "--degraded-photos", str(degraded), "--write"])
    printed = capsys.readouterr().out
    assert "scale1/4 needs the highest" in printed
    after = json.loads((model / "config.json").read_text())
    result = json.loads(printed[printed.index("{"):])
    assert after["fake_above"] == result["fake_above"] > after["threshold"] + after["uncertain_band"]
    recorded = after["training"]["threshold_picked_on"]["degraded_photos"]
    assert recorded["fake_cut_needed"]["scale1/4"] == after["fake_above"] and recorded["which"] == UNSEEN
    assert DetectorConfig(**{**after, "training": {}}).fake_cut == after["fake_above"]


def test_degraded_photos_of_the_wrong_half_or_without_scores_are_refused(tmp_path):
    model = tmp_path / "student-kd"
    model.mkdir()
    shutil.copy(ROOT / "models" / "student-kd" / "config.json", model / "config.json")
    val, photo_csv = _score_files(tmp_path, np.full(10, 0.05))
    all_photos = json.loads(_degraded_json(tmp_path, {"blur": np.full(10, 0.05)}, which="all").read_text())
    with pytest.raises(ValueError, match="unseen half"):
        op.choose(model, val, photo_csv, degraded=all_photos)
    with pytest.raises(ValueError, match="no per-face P.fake. for blur"):
        op.choose(model, val, photo_csv, degraded={**all_photos, "which": UNSEEN,
                                                   "degradations": {"blur": {"fake_share": {}}}})
