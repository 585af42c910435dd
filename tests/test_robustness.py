"""``train.robustness`` on a tiny untrained ResNet8 and 48 validation rows, with a three-entry suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepfake_space.card_tables import robustness_markdown
from deepfake_space.models import DeepfakeDetector
from train import evaluate as ev
from train import robustness as rb

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT.parent / "shared" / "data" / "dfdc_faces" / "data" / "validation-00000-of-00001.parquet"
SUITE = ["clean", "jpeg30", "mirror"]
N = 48
KEYS = {"model", "data", "split", "n", "n_groups", "threshold", "uncertain_band", "fake_above", "n_confident_clean",
        "seed", "n_boot", "suite", "degradations", "command"}
ENTRY_KEYS = {"description", "roc_auc", "auc_change", "n_reversed", "reversal_share"}

pytestmark = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = DeepfakeDetector.create("resnet8", input_size=64)
    folder = tmp_path_factory.mktemp("robustness") / "resnet8"
    model.save_pretrained(folder, config=model.config)
    return folder


@pytest.fixture(scope="module")
def result(model_dir) -> dict:
    return rb.robustness_table(str(model_dir), str(VAL_FILE), suite=SUITE, limit=N, batch_size=16, n_boot=100,
                               progress=False)


def _check_interval(block: dict) -> None:
    assert set(block) == {"value", "ci_low", "ci_high"}
    assert all(isinstance(v, float) for v in block.values())
    assert block["ci_low"] <= block["ci_high"]


def test_result_has_the_documented_keys(result, model_dir):
    assert set(result) == KEYS
    assert result["suite"] == SUITE and list(result["degradations"]) == SUITE
    assert result["n"] == N and 1 <= result["n_groups"] <= N
    assert result["model"] == str(model_dir) and result["split"] == "validation"
    assert 0 <= result["n_confident_clean"] <= N
    for name, entry in result["degradations"].items():
        assert set(entry) == ENTRY_KEYS, name
        _check_interval(entry["roc_auc"])
        _check_interval(entry["auc_change"])
        assert 0.0 <= entry["roc_auc"]["value"] <= 1.0
        assert 0 <= entry["n_reversed"] <= result["n_confident_clean"]
        share = entry["reversal_share"]
        assert share is None if result["n_confident_clean"] == 0 else 0.0 <= share <= 1.0


def test_clean_is_the_reference(result):
    clean = result["degradations"]["clean"]
    assert clean["auc_change"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert clean["n_reversed"] == 0


def test_degraded_changes_are_paired_against_clean(result):
    clean_auc = result["degradations"]["clean"]["roc_auc"]["value"]
    for name in SUITE[1:]:
        entry = result["degradations"][name]
        assert entry["auc_change"]["value"] == pytest.approx(entry["roc_auc"]["value"] - clean_auc)


def test_clean_scores_what_evaluate_scores(result, model_dir):
    """Same rows (the seeded --limit subset), same transform, same folded model: the same clean AUC."""
    evaluated = ev.evaluate(str(model_dir), str(VAL_FILE), limit=N, batch_size=16, n_boot=20, latency_runs=1,
                            progress=False)
    assert result["degradations"]["clean"]["roc_auc"]["value"] == pytest.approx(
        evaluated["metrics"]["roc_auc"]["value"], abs=1e-9)


def test_a_rerun_repeats_and_clean_is_always_scored(result, model_dir):
    again = rb.robustness_table(str(model_dir), str(VAL_FILE), suite=["jpeg30"], limit=N, batch_size=16,
                                n_boot=100, progress=False)
    assert again["suite"] == ["clean", "jpeg30"]
    for name in again["suite"]:
        assert again["degradations"][name] == result["degradations"][name]


def test_unknown_degradation_is_refused(model_dir):
    with pytest.raises(ValueError, match="jpeg5"):
        rb.robustness_table(str(model_dir), str(VAL_FILE), suite=["jpeg5"], limit=N)


def test_markdown_has_one_row_per_degradation(result):
    table = robustness_markdown(result).splitlines()
    assert len(table) == 2 + len(SUITE)
    assert table[2].startswith("| clean |") and "reference" in table[2]
    assert all(line.count("|") == 6 for line in table)


def test_cli_writes_the_json_with_its_command(model_dir, tmp_path):
    out = tmp_path / "robustness.json"
    cmd = [sys.executable, "-m", "train.robustness", "--model", str(model_dir), "--data", str(VAL_FILE),
           "--split", "validation", "--limit", "24", "--suite", "jpeg30,mirror", "--out", str(out),
           "--n-boot", "50", "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    written = json.loads(out.read_text())
    assert set(written) == KEYS and written["n"] == 24
    assert written["suite"] == ["clean", "jpeg30", "mirror"]
    assert written["command"].startswith("python -m train.robustness --model ")
    assert "--limit 24" in written["command"] and "--suite jpeg30,mirror" in written["command"]
    assert "| jpeg30 |" in proc.stdout and "| mirror |" in proc.stdout


def test_a_model_released_with_tta_scores_a_mirrored_crop_as_the_crop(result, model_dir, tmp_path):
    """The suite scores the prediction the app makes: with ``tta`` in the config, mirroring changes nothing."""
    averaged = tmp_path / "tta"
    shutil.copytree(model_dir, averaged)
    ev.update_config(averaged, {"tta": True})
    table = rb.robustness_table(str(averaged), str(VAL_FILE), suite=["mirror"], limit=N, batch_size=16,
                                n_boot=100, progress=False)
    assert table["degradations"]["mirror"]["auc_change"]["value"] == 0.0
    assert table["degradations"]["mirror"]["n_reversed"] == 0
    assert result["degradations"]["mirror"]["auc_change"]["value"] != 0.0, "without it, mirroring moves scores"
