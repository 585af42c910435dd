"""Recipes (train.recipe): stages run in order into OUTPUT_DIR/NAME, are recorded, skipped when finished and
refused when their folder was made from other options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_space.models import load_detector
from train.recipe import load_recipe
from train.train import parse_args

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dfdc_faces"
CONFIGS = sorted((ROOT / "train" / "configs").glob("*.toml"))
CANDIDATES = sorted((ROOT / "train" / "configs" / "candidates").glob("*.toml"))  # trained, measured, not released alone


def _recipe(tmp: Path) -> Path:
    path = tmp / "tiny.toml"
    path.write_text(f"""
name = "tiny"
output_dir = "{tmp / 'runs'}"

[defaults]
model = "resnet8"
data = "{DATA}"
input_size = 64
train_subset = 32
val_subset = 32
batch_size = 8
num_workers = 0
checkpointing_steps = 0

[[stages]]
name = "first"
epochs = 1

[[stages]]
name = "second"
epochs = 1
init = "{tmp / 'runs' / 'first' / 'best'}"
lr = 5e-4
""")
    return path


def _train(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.train", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "LOGLEVEL": "INFO"})


@pytest.mark.parametrize("path", CONFIGS + CANDIDATES, ids=[p.stem for p in CONFIGS + CANDIDATES])
def test_every_recipe_parses_into_train_options(path):
    recipe = load_recipe(path)
    if path in CONFIGS:
        assert (ROOT / "models" / recipe.name).is_dir(), f"{recipe.name} is no released model"
        released = json.loads((ROOT / "models" / recipe.name / "config.json").read_text())
        assert released.get("tta", False) == bool(recipe.tta), "the release predicts as its recipe says"
    for stage in recipe.stages:
        args = parse_args(["--output-dir", str(stage.output_dir)], stage.values)
        assert args.model and args.data and args.output_dir == str(stage.output_dir)


def test_unknown_options_and_stage_output_dirs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="learning_rate"):
        parse_args(["--output-dir", "x"], {"model": "resnet8", "data": "d", "learning_rate": 1.0})
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\noutput_dir = "runs/x"\n[[stages]]\nname = "a"\noutput_dir = "elsewhere"\n')
    with pytest.raises(ValueError, match="OUTPUT_DIR/NAME"):
        load_recipe(bad)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not available")
def test_stages_run_in_order_are_recorded_skipped_and_guarded(tmp_path):
    recipe = _recipe(tmp_path)
    first = _train("--config", str(recipe))
    assert first.returncode == 0, first.stderr[-3000:]
    runs = tmp_path / "runs"
    for stage in ("first", "second"):
        assert (runs / stage / "finished.json").is_file() and (runs / stage / "best" / "model.safetensors").is_file()
    training = load_detector(runs / "second" / "best").config.training
    assert training["recipe"]["stage"] == "second" and training["recipe"]["options"]["lr"] == 5e-4
    assert training["command"] == f"accelerate launch -m train.train --config {recipe} --stage second"
    assert training["warm_start"]["from"] == str(runs / "first" / "best")
    assert json.loads((runs / "second" / "recipe.json").read_text()) == training["recipe"]["options"]

    again = _train("--config", str(recipe))
    assert again.returncode == 0 and again.stderr.count("is finished") == 2, again.stderr[-3000:]

    changed = _train("--config", str(recipe), "--stage", "second", "--lr", "1e-3")
    assert changed.returncode != 0 and "made from other options (lr differ)" in changed.stderr
