"""``train.photo_robustness``: real faces under the degradation suite, on a tiny untrained ResNet8 and four photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_space.card_tables import photo_robustness_markdown
from deepfake_space.cards import PHOTO_ROBUSTNESS_FILE, render_model_card
from deepfake_space.config import DetectorConfig
from deepfake_space.models import DeepfakeDetector
from media_factory import astronaut_image
from train.photo_robustness import UNSEEN, at_decision_rule, photo_robustness

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SUITE = ["clean", "scale1/4", "noise8"]
KEYS = {"model", "photos", "which", "n_photos", "n_scored", "no_face", "threshold", "uncertain_band", "fake_above",
        "seed", "suite", "degradations", "command"}


def _model(folder: Path, threshold: float = 0.5, band: float = 0.1) -> Path:
    torch.manual_seed(0)
    model = DeepfakeDetector.create("resnet8", input_size=64)
    model.config.threshold, model.config.uncertain_band = threshold, band
    model.save_pretrained(folder, config=model.config)
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """photo0..3 in name order: 0 and 2 the transfer half, 1 and 3 the unseen one; 3 is noise, with no face."""
    folder = tmp_path_factory.mktemp("photos")
    face = astronaut_image()
    for i in range(4):
        image = face if i != 3 else np.random.default_rng(i).integers(0, 256, (300, 300, 3), np.uint8)
        Image.fromarray(image if i != 1 else np.ascontiguousarray(face[:, ::-1])).save(folder / f"photo{i}.jpg")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _model(tmp_path_factory.mktemp("photo_robustness") / "resnet8")


@pytest.fixture(scope="module")
def result(model_dir, photos) -> dict:
    return photo_robustness(str(model_dir), photos, all_photos=True, suite=SUITE, batch_size=8, progress=False)


def test_result_has_the_documented_keys_and_counts_photos_without_a_face(result, photos):
    assert set(result) == KEYS and result["suite"] == SUITE and list(result["degradations"]) == SUITE
    assert result["which"] == "all" and result["photos"] == str(photos)
    assert (result["n_photos"], result["n_scored"], result["no_face"]) == (4, 3, 1)


def test_shares_are_of_the_faces_scored(result):
    for name, entry in result["degradations"].items():
        fake = entry["fake_share"]
        assert fake["count"] == round(fake["value"] * result["n_scored"]), name
        assert fake["ci_low"] <= fake["value"] <= fake["ci_high"]
        assert fake["value"] + entry["uncertain_share"] + entry["real_share"] == pytest.approx(1.0)
        assert 0.0 <= entry["median_p_fake"] <= 1.0


def test_the_unseen_half_is_the_default(model_dir, photos):
    unseen = photo_robustness(str(model_dir), photos, suite=["clean"], progress=False)
    assert unseen["which"] == UNSEEN and (unseen["n_photos"], unseen["n_scored"], unseen["no_face"]) == (2, 1, 1)


def test_verdicts_follow_the_models_threshold(tmp_path, photos):
    """A threshold near 0 calls every face fake, one near 1 none: the shares come from the model's own verdicts."""
    low = photo_robustness(str(_model(tmp_path / "low", 1e-6, 0.0)), photos, all_photos=True, suite=["clean"],
                           progress=False)
    high = photo_robustness(str(_model(tmp_path / "high", 1 - 1e-6, 0.0)), photos, all_photos=True,
                            suite=["clean"], progress=False)
    assert low["degradations"]["clean"]["fake_share"]["count"] == 3
    assert high["degradations"]["clean"]["fake_share"]["count"] == 0
    assert high["degradations"]["clean"]["real_share"] == 1.0


def test_shares_are_recomputed_at_a_new_decision_rule(result):
    """``at_decision_rule`` re-reads the stored P(fake) of every face: a fake cut above all of them calls none fake
    and leaves those between the cuts uncertain, without scoring again."""
    scores = result["degradations"]["clean"]["p_fake"]
    assert len(scores) == result["n_scored"]
    low = DetectorConfig("resnet8", threshold=min(scores) / 2, uncertain_band=0.0)
    everything_fake = at_decision_rule(result, low)
    assert everything_fake["degradations"]["clean"]["fake_share"]["count"] == len(scores)
    stretched = at_decision_rule(result, low.replace(fake_above=(1 + max(scores)) / 2))
    clean = stretched["degradations"]["clean"]
    assert clean["fake_share"]["count"] == 0 and clean["uncertain_share"] == 1.0
    assert stretched["fake_above"] == (1 + max(scores)) / 2 and clean["p_fake"] == scores


def test_a_folder_without_photos_is_refused(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no photos"):
        photo_robustness(str(model_dir), tmp_path, suite=["clean"], progress=False)


def test_markdown_and_card_show_one_row_per_degradation(result, model_dir):
    table = photo_robustness_markdown(result).splitlines()
    assert len(table) == 2 + len(SUITE) and all(line.count("|") == 6 for line in table)
    assert table[3].startswith("| scale1/4 |") and "of 3;" in table[3]
    (model_dir / PHOTO_ROBUSTNESS_FILE).write_text(json.dumps(result))
    card = render_model_card(model_dir, repo_id="acme/resnet8")
    assert photo_robustness_markdown(result) in card.text and result["command"] in card.text
    assert "every \"fake\" here is a false accusation" in card.text


def test_cli_writes_the_json_with_its_command(model_dir, photos, tmp_path):
    out = tmp_path / "photo_robustness.json"
    cmd = [sys.executable, "-m", "train.photo_robustness", "--model", str(model_dir), "--photos", str(photos),
           "--suite", "jpeg30", "--out", str(out), "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    written = json.loads(out.read_text())
    assert set(written) == KEYS and written["suite"] == ["clean", "jpeg30"] and written["n_scored"] == 1
    assert written["command"].startswith("python -m train.photo_robustness --model")
    assert "| jpeg30 |" in proc.stdout
