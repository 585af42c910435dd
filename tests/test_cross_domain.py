"""Cross-domain report: the full pipeline on a tiny synthesized wild set and photo folder, with the embedded
student; no-face files counted and never scored; the report recomputed from the saved scores is identical."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_space.config import DetectorConfig
from media_factory import write_image, write_video
from train import cross_domain as cd

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "models" / "student-kd"

pytestmark = pytest.mark.skipif(not (STUDENT / "model.safetensors").is_file(), reason="no embedded student-kd")


def _noise(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cross_domain")
    wild, photos = root / "wild", root / "photos"
    (wild / "videos").mkdir(parents=True)
    photos.mkdir()
    write_video(wild / "videos" / "swap.mp4", frames=12)
    write_image(wild / "videos" / "person.jpg")
    _noise(wild / "videos" / "noise.png")
    with (wild / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "source", "licence"])
        writer.writerows([["videos/swap.mp4", "fake", "synthetic", "-"], ["videos/person.jpg", "real", "skimage", "-"],
                          ["videos/noise.png", "fake", "noise", "-"]])
    write_image(photos / "a.jpg")
    _noise(photos / "b.png")
    return wild, photos


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> tuple[Path, dict]:
    wild, photos = data
    out = tmp_path_factory.mktemp("cross_domain_out")
    cd.main(["--model", f"student-kd={STUDENT}", "--wild", str(wild), "--photos", str(photos), "--out",
             str(out / "cross_domain.json"), "--frames", "4", "--threads", "1", "--n-boot", "100", "--no-progress"])
    return out, json.loads((out / "cross_domain.json").read_text())


def test_report_keys_and_no_face_files_are_counted_not_scored(run):
    out, report = run
    assert {"models", "wild", "photos", "n_boot", "seed", "note", "sources", "command"} <= set(report)
    assert set(report["models"]) == {"student-kd"}
    wild = report["wild"]
    assert wild["n_files"] == 3 and wild["labels"] == {"real": 1, "fake": 2}
    assert wild["status"] == {"ok": 2, "no_face": 1, "error": 0}
    # a fake with no face is counted as unscored, never as a real verdict
    assert wild["unscored_by_label"]["fake"]["no_face"] == 1
    assert [f["file"] for f in wild["unscored_files"]] == ["videos/noise.png"]
    m = wild["models"]["student-kd"]
    assert m["n_scored"] == 2 and (m["n_real"], m["n_fake"]) == (1, 1)
    assert sum(m["verdicts"]["fake"].values()) == 1 and sum(m["verdicts"]["real"].values()) == 1
    assert set(m["roc_auc"]) == {"value", "ci_low", "ci_high", "n", "n_boot"} and m["roc_auc"]["n"] == 2
    photos = report["photos"]
    assert photos["n_files"] == 2 and photos["status"]["no_face"] == 1 and photos["no_face_share"] == 0.5
    pm = photos["models"]["student-kd"]
    assert pm["n_scored"] == 1 and len(pm["p_fake"]) == 1 and 0.0 <= pm["p_fake"][0] <= 1.0
    # the second photo by name is the unseen half (train.data.photo_halves); it has no face, so nothing is scored
    assert photos["unseen"]["n_files"] == 1 and photos["unseen"]["models"]["student-kd"]["n_scored"] == 0
    assert pm["fake_share"]["value"] + pm["uncertain_share"] + pm["real_share"] == pytest.approx(1.0)
    assert 0.0 <= pm["fake_share"]["ci_low"] <= pm["fake_share"]["value"] <= pm["fake_share"]["ci_high"] <= 1.0
    markdown = (out / "cross_domain.md").read_text()
    assert "| student-kd |" in markdown and "no face found in 1" in markdown


def test_scores_csv_has_one_row_per_file_and_none_for_unscored(run):
    out, _ = run
    with (out / cd.WILD_SCORES).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "label", "status", "student-kd_p_fake", "message"]
    noise = next(r for r in rows if r["file"] == "videos/noise.png")
    assert noise["status"] == "no_face" and noise["student-kd_p_fake"] == "" and "No face" in noise["message"]
    assert all(r["student-kd_p_fake"] for r in rows if r["status"] == "ok")


def test_from_scores_reproduces_the_report(run, tmp_path):
    out, report = run
    photos = Path(report["sources"]["photos"])
    cd.main(["--model", f"student-kd={STUDENT}", "--from-scores", str(out), "--photos", str(photos),
             "--out", str(tmp_path / "again.json"), "--n-boot", "100"])
    again = json.loads((tmp_path / "again.json").read_text())
    drop = ("sources", "command")
    assert {k: v for k, v in again.items() if k not in drop} == {k: v for k, v in report.items() if k not in drop}


def test_report_counts_verdicts_with_the_band_and_ignores_unscored_files():
    rows = [cd.Scored("a", "fake", "ok", {"m": 0.9}), cd.Scored("b", "fake", "ok", {"m": 0.55}),
            cd.Scored("c", "real", "ok", {"m": 0.1}), cd.Scored("d", "real", "ok", {"m": 0.8}),
            cd.Scored("e", "fake", "no_face", {"m": None}), cd.Scored("f", "real", "error", {"m": None}, "broken")]
    config = DetectorConfig(arch="resnet8", threshold=0.5, uncertain_band=0.1)
    photos = [rows[2], rows[3], cd.Scored("g", "real", "no_face", {"m": None}), rows[5]]
    report = cd.cross_domain_report(rows, photos, {"m": config}, n_boot=50)
    m = report["wild"]["models"]["m"]
    assert m["verdicts"] == {"fake": {"fake": 1, "real": 0, "uncertain": 1},
                             "real": {"fake": 1, "real": 1, "uncertain": 0}}
    assert m["roc_auc"]["value"] == pytest.approx(0.75) and m["roc_auc"]["n"] == 4
    assert m["accuracy_decided"] == pytest.approx(2 / 3) and m["decided_share"] == 0.75
    assert m["fake_recall"] == 0.5 and m["false_fake_rate"] == 0.5
    assert report["wild"]["unscored_by_label"] == {"real": {"no_face": 0, "error": 1},
                                                   "fake": {"no_face": 1, "error": 0}}
    pm = report["photos"]["models"]["m"]
    assert pm["n_scored"] == 2 and pm["p_fake"] == [0.1, 0.8] and pm["fake_share"]["count"] == 1
    assert report["photos"]["status"] == {"ok": 2, "no_face": 1, "error": 1}
