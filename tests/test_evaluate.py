"""``python -m train.evaluate`` on a tiny untrained ResNet8 and 64 validation rows."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepfake_space.models import DeepfakeDetector, load_detector
from deepfake_space.timing import median_seconds
from train import evaluate as ev

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT.parent / "shared" / "data" / "dfdc_faces" / "data" / "validation-00000-of-00001.parquet"
METRICS = {"accuracy", "macro_f1", "roc_auc", "average_precision", "eer", "log_loss", "ece"}
KEYS = {"model", "data", "split", "n", "threshold", "metrics", "latency_ms_per_image", "throughput_img_s",
        "params", "file_size_mb", "command"}

pytestmark = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")


def _tiny_model(folder: Path) -> Path:
    torch.manual_seed(0)
    model = DeepfakeDetector.create("resnet8", input_size=64)
    model.save_pretrained(folder, config=model.config)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp("eval") / "resnet8")


@pytest.fixture(scope="module")
def cli_run(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_out")
    cmd = [sys.executable, "-m", "train.evaluate", "--model", str(model_dir), "--data", str(VAL_FILE),
           "--split", "validation", "--out", str(out / "metrics.json"), "--scores", str(out / "scores.csv"),
           "--group-by", "original", "--limit", "64", "--batch-size", "16", "--n-boot", "100",
           "--latency-runs", "3", "--threads", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def _check_metric_block(block: dict) -> None:
    assert set(block) == METRICS
    for name, m in block.items():
        assert set(m) == {"value", "ci_low", "ci_high"}, name
        assert all(isinstance(v, float) for v in m.values()), name
        assert m["ci_low"] <= m["ci_high"], name


def test_metrics_json_has_documented_keys_and_cis(cli_run, model_dir):
    out, proc = cli_run
    result = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(result)
    assert result["model"] == str(model_dir) and result["data"] == str(VAL_FILE)
    assert result["split"] == "validation" and result["n"] == 64
    assert result["threshold"] == 0.5  # the config's threshold; nothing was picked
    _check_metric_block(result["metrics"])
    assert 0.0 <= result["metrics"]["roc_auc"]["value"] <= 1.0
    assert result["latency_ms_per_image"] > 0 and result["throughput_img_s"] > 0
    assert result["params"] == load_detector(model_dir).num_params()
    assert result["file_size_mb"] == pytest.approx((model_dir / "model.safetensors").stat().st_size / 2**20, abs=1e-3)
    assert result["command"].startswith("python -m train.evaluate --model ")
    assert "--group-by original" in result["command"] and "--limit 64" in result["command"]
    assert "AUC" in proc.stdout


def test_group_by_gives_video_metrics(cli_run):
    out, _ = cli_run
    result = json.loads((out / "metrics.json").read_text())
    assert result["group_by"] == "original"
    assert 1 <= result["n_groups"] <= 64
    _check_metric_block(result["video_metrics"])


def test_scores_csv_has_one_row_per_image(cli_run):
    out, _ = cli_run
    with (out / "scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 64
    assert list(rows[0]) == ["index", "group", "label", "p_fake"]
    indices = [int(r["index"]) for r in rows]
    assert indices == sorted(set(indices)) and max(indices) < 3531
    assert {int(r["label"]) for r in rows} == {0, 1}
    assert all(0.0 <= float(r["p_fake"]) <= 1.0 for r in rows)
    assert all(r["group"].endswith(".mp4") for r in rows)


def test_scores_match_the_model(cli_run, model_dir):
    """p_fake in scores.csv is the model's own P(fake) under its eval transform."""
    from deepfake_space.transforms import build_eval_transform, pil_to_rgb
    from train.data import load_split

    out, _ = cli_run
    with (out / "scores.csv").open() as f:
        first = next(csv.DictReader(f))
    model = load_detector(model_dir)
    row = load_split(VAL_FILE, "validation")[int(first["index"])]
    x = build_eval_transform(model.config)(pil_to_rgb(row["image"]))
    assert model.predict_proba(x[None]).item() == pytest.approx(float(first["p_fake"]), abs=1e-5)
    assert int(first["label"]) == row["label"] and first["group"] == row["group"]


def test_pick_threshold_is_refused_on_test_split(model_dir, tmp_path, capsys):
    before = (model_dir / "config.json").read_text()
    with pytest.raises(SystemExit) as exc:
        ev.main(["--model", str(model_dir), "--data", str(VAL_FILE), "--split", "test", "--pick-threshold",
                 "--out", str(tmp_path / "m.json")])
    assert "never picked on test data" in str(exc.value.code)
    with pytest.raises(ev.ThresholdOnTestError):
        ev.evaluate(str(model_dir), str(VAL_FILE), split="test", pick_threshold_on_split=True)
    assert (model_dir / "config.json").read_text() == before
    assert not (tmp_path / "m.json").exists()


def test_pick_threshold_on_validation_writes_the_config(tmp_path):
    model_dir = _tiny_model(tmp_path / "model")
    result = ev.evaluate(str(model_dir), str(VAL_FILE), split="validation", out=tmp_path / "m.json", limit=64,
                         batch_size=32, pick_threshold_on_split=True, n_boot=50, latency_runs=2, progress=False)
    config = json.loads((model_dir / "config.json").read_text())
    assert result["threshold"] == config["threshold"]
    assert 0.0 < config["threshold"] < 1.0
    assert config["training"]["threshold_picked_on"]["split"] == "validation"
    assert config["training"]["threshold_picked_on"]["n"] == 64
    reloaded = load_detector(model_dir)
    assert reloaded.config.threshold == pytest.approx(result["threshold"])
    assert reloaded.config.arch == "resnet8" and reloaded.config.input_size == 64


def test_tta_and_limit_are_honoured(model_dir):
    plain = ev.evaluate(str(model_dir), str(VAL_FILE), limit=32, batch_size=32, n_boot=20, latency_runs=1,
                        progress=False)
    tta = ev.evaluate(str(model_dir), str(VAL_FILE), limit=32, batch_size=32, n_boot=20, latency_runs=1,
                      tta=True, progress=False)
    assert plain["n"] == tta["n"] == 32
    assert tta["tta"] and not plain["tta"]
    assert "video_metrics" not in plain


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ev.main(["--model", str(tmp_path / "nope"), "--data", str(VAL_FILE), "--out", str(tmp_path / "m.json")])
    assert "does not exist" in str(exc.value.code)


@pytest.mark.parametrize("tta, factor", [(False, 1), (True, 2)])
def test_speed_is_measured_on_the_prediction_that_was_scored(model_dir, tta, factor):
    """With TTA every timed prediction runs the network once on the images followed by their mirrors."""
    model = load_detector(model_dir)
    batches = []
    model.net.register_forward_hook(lambda _module, args, _out: batches.append(args[0]))
    sample = torch.rand(3, 64, 64)
    ev.measure_speed(model, sample, batch_size=4, tta=tta, warmup=0, runs=1, batch_runs=1)
    assert [len(b) for b in batches] == [factor, 4 * factor, 4 * factor]  # the batch timing warms up once
    if tta:
        assert torch.equal(batches[0][1], batches[0][0].flip(-1))


def test_tta_averages_the_logits_of_the_image_and_its_mirror(model_dir):
    model = load_detector(model_dir)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = ((model(x) + model(x.flip(-1))) / 2).softmax(-1)[:, 1]
    assert torch.allclose(model.predict_proba(x, tta=True), expected, atol=1e-6)
    assert not torch.allclose(model.predict_proba(x, tta=True), model.predict_proba(x), atol=1e-6)


def test_no_latency_runs_is_a_clear_error(capsys):
    """Zero timed forwards would leave no latency to report: refused up front, not a traceback after scoring."""
    with pytest.raises(SystemExit):
        ev.parse_args(["--model", "m", "--data", "d", "--latency-runs", "0"])
    assert "--latency-runs must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one run"):
        median_seconds(lambda: None, runs=0)
