"""End-to-end training runs on a tiny subset: two-process checkpoint/resume, and teacher-logit caching.

``train/train.py`` shadows the package name, so the trainer always runs as a module (``-m train.train``).
Two CPU processes are started with ``accelerate launch --multi_gpu --num_processes 2`` and
``ACCELERATE_USE_CPU=true`` (accelerate then runs torchrun with the gloo backend: MULTI_CPU). Note that
``accelerate launch --cpu --num_processes 2`` would start ONE process.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepfake_space.models import DeepfakeDetector, load_detector
from train.teacher_logits import weights_stamp

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dfdc_faces"
ACCELERATE = Path(sys.executable).parent / "accelerate"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not available")]

TRAIN_SUBSET, BATCH, PROCS, EPOCHS = 64, 8, 2, 2
STEPS_PER_EPOCH = TRAIN_SUBSET // (BATCH * PROCS)  # drop_last; each process sees half the rows


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env.update({"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "LOGLEVEL": "INFO",
                "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    return env


def _run(cmd: list[str], check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def _train_args(out: Path, *extra: str) -> list[str]:
    return ["-m", "train.train", "--model", "resnet8", "--data", str(DATA), "--train-subset", str(TRAIN_SUBSET),
            "--val-subset", "32", "--batch-size", str(BATCH), "--epochs", str(EPOCHS), "--checkpointing-steps", "2",
            "--input-size", "64", "--num-workers", "0", "--output-dir", str(out), *extra]


def _launch_two(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run([str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", str(PROCS), "--num_machines", "1",
                 "--mixed_precision", "no", "--dynamo_backend", "no", *_train_args(out, *extra)])


def _summary(out: Path) -> list[dict]:
    with (out / "summary.csv").open() as f:
        return list(csv.DictReader(f))


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1]))


def _saved_step(ckpt: Path) -> int:
    """The TrainState step stored by accelerator.register_for_checkpointing."""
    state = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False)
    return int(state["step"])


@pytest.fixture(scope="module")
def resumed_and_straight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    interrupted, straight = tmp / "interrupted", tmp / "straight"
    first = _launch_two(interrupted, "--max-steps", str(STEPS_PER_EPOCH))
    after_first = {
        "summary": _summary(interrupted),
        "checkpoints": [(c.name, _saved_step(c)) for c in _checkpoints(interrupted)],
        "rng_files": sorted(p.name for p in _checkpoints(interrupted)[-1].glob("random_states_*.pkl")),
    }
    resumed = _launch_two(interrupted, "--resume-from-checkpoint", "latest")
    _launch_two(straight)
    return {"interrupted": interrupted, "straight": straight, "first": first, "after_first": after_first,
            "resumed": resumed}


def test_two_processes_are_used(resumed_and_straight):
    after = resumed_and_straight["after_first"]
    # accelerate saves one RNG state per process, and each process takes half of every epoch.
    assert after["rng_files"] == ["random_states_0.pkl", "random_states_1.pkl"]
    assert [int(r["step"]) for r in after["summary"]] == [STEPS_PER_EPOCH]


def test_interrupted_run_saved_mid_epoch_and_epoch_end_checkpoints(resumed_and_straight):
    steps = [step for _, step in resumed_and_straight["after_first"]["checkpoints"]]
    assert steps == [2, STEPS_PER_EPOCH]  # --checkpointing-steps 2 mid-epoch, then the epoch end


def test_resume_starts_at_saved_step_and_finishes_like_straight_run(resumed_and_straight):
    out = resumed_and_straight["interrupted"]
    log = resumed_and_straight["resumed"].stdout
    assert f"at step {STEPS_PER_EPOCH}" in log and "resumed from" in log, log[-2000:]
    resumed_rows, straight_rows = _summary(out), _summary(resumed_and_straight["straight"])
    assert [int(r["epoch"]) for r in resumed_rows] == list(range(EPOCHS))  # continued with the next epoch
    assert [int(r["step"]) for r in resumed_rows] == [int(r["step"]) for r in straight_rows]
    assert int(resumed_rows[-1]["step"]) == EPOCHS * STEPS_PER_EPOCH
    # The RNG, sampler, optimizer and scheduler states were restored: the resumed epoch is the same epoch.
    for a, b in zip(resumed_rows, straight_rows):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-4, abs=1e-5)
        assert float(a["val_auc"]) == pytest.approx(float(b["val_auc"]), abs=1e-4)


def test_latest_checkpoint_after_resume_is_the_newest_state(resumed_and_straight):
    """A second resume must pick the final state, not a checkpoint left over from the first run."""
    ckpts = _checkpoints(resumed_and_straight["interrupted"])
    assert _saved_step(ckpts[-1]) == EPOCHS * STEPS_PER_EPOCH
    assert len(ckpts) <= 2  # total_limit


def test_best_model_is_loadable_with_a_picked_threshold(resumed_and_straight):
    best = load_detector(resumed_and_straight["interrupted"] / "best")
    assert best.config.arch == "resnet8" and best.config.input_size == 64
    assert 0.0 < best.config.threshold < 1.0
    assert "train.train" in best.config.training["command"]
    with torch.no_grad():
        assert best(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


# --- distillation with cached teacher logits -------------------------------------------------------------

def _distil_args(out: Path, teacher: Path, cache: Path) -> list[str]:
    return ["--model", "resnet8", "--data", str(DATA), "--train-subset", "32", "--val-subset", "16",
            "--batch-size", "8", "--epochs", "1", "--checkpointing-steps", "0", "--input-size", "64",
            "--num-workers", "0", "--teacher", str(teacher), "--teacher-logits", str(cache), "--kd", "kl",
            "--alpha", "0.5", "--output-dir", str(out)]


def _distil(out: Path, teacher: Path, cache: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "train.train", *_distil_args(out, teacher, cache)])


def test_teacher_logits_are_cached_reused_and_refused_for_another_teacher(tmp_path):
    teacher = tmp_path / "teacher"
    torch.manual_seed(0)
    model = DeepfakeDetector.create("resnet8", input_size=64)
    model.save_pretrained(teacher, config=model.config)
    cache = tmp_path / "logits.safetensors"

    first = _distil(tmp_path / "run1", teacher, cache)
    assert cache.is_file()
    assert "saved teacher logits for 32 rows" in first.stderr
    stamp = cache.stat().st_mtime_ns

    os.utime(teacher / "model.safetensors")  # a fresh clone: same weights, new mtime
    second = _distil(tmp_path / "run2", teacher, cache)
    assert "using cached teacher logits" in second.stderr
    assert cache.stat().st_mtime_ns == stamp
    assert (tmp_path / "run2" / "best" / "model.safetensors").is_file()
    record = load_detector(tmp_path / "run2" / "best").config.training
    assert record["teacher"] == str(teacher) and record["teacher_weights"] == weights_stamp(str(teacher))

    other = tmp_path / "other_teacher"
    torch.manual_seed(1)
    model = DeepfakeDetector.create("resnet8", input_size=64)
    model.save_pretrained(other, config=model.config)
    # In-process (saves a process start): the run stops before any training step.
    from train.train import main as train_main

    with pytest.raises(ValueError, match="logits of another teacher"):
        train_main(_distil_args(tmp_path / "run3", other, cache))
    assert cache.stat().st_mtime_ns == stamp
    assert not (tmp_path / "run3" / "summary.csv").exists()


def test_recorded_command_reproduces_the_run_without_its_resume():
    from train.train import recipe_command

    argv = ["--model", "resnet8", "--resume-from-checkpoint", "latest", "--output-dir", "runs/x",
            "--resume-from-checkpoint=runs/x/checkpoints/checkpoint_3", "--lr", "1e-3"]
    assert recipe_command(argv) == ("accelerate launch -m train.train --model resnet8 --output-dir runs/x "
                                    "--lr 1e-3")


def test_warm_start_copies_weights_refuses_another_architecture_and_is_recorded(tmp_path):
    from train.train import warm_start

    start = tmp_path / "first_cycle"
    torch.manual_seed(0)
    trained = DeepfakeDetector.create("resnet8", input_size=64)
    trained.config.training = {"command": "the first cycle's command", "epoch": 27, "val_auc": 0.5}
    trained.save_pretrained(start, config=trained.config)

    fresh = DeepfakeDetector.create("resnet8", input_size=64)
    assert warm_start(fresh, str(start))["command"] == "the first cycle's command"
    for (name, a), b in zip(fresh.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="not a resnet8_w24"):
        warm_start(DeepfakeDetector.create("resnet8_w24", input_size=64), str(start))

    out = tmp_path / "second_cycle"
    _run([sys.executable, *_train_args(out, "--init", str(start), "--epochs", "1")])
    record = load_detector(out / "best").config.training
    assert record["warm_start"]["from"] == str(start)
    assert record["warm_start"]["command"] == "the first cycle's command"
    assert "--init " + str(start) in record["command"]


def test_self_blends_transfer_rows_and_degradations_train_and_are_recorded(tmp_path):
    """--sbi adds a blend per real row with landmarks, --extra-train appends rows, --degrade degrades the inputs;
    the release config records all three."""
    import datasets

    from train.transfer_set import FEATURES

    val = datasets.load_dataset(str(DATA), split="validation").select(range(8))
    extra = datasets.Dataset.from_dict({"image": list(val["image"]), "label": [0] * 8,
                                        "group": [f"photo:{i}" for i in range(8)], "source": ["test"] * 8},
                                       features=FEATURES)
    extra_dir = tmp_path / "extra"
    (extra_dir / "data").mkdir(parents=True)
    extra.to_parquet(str(extra_dir / "data" / "train-00000-of-00001.parquet"))
    out = tmp_path / "run"
    proc = _run([sys.executable, *_train_args(out, "--epochs", "1", "--sbi", "--landmark-cache",
                                              str(tmp_path / "landmarks"), "--extra-train", str(extra_dir),
                                              "--degrade", "1.0", "--fake-subset", "2")])
    assert "self-blended images:" in proc.stderr
    assert any((tmp_path / "landmarks").glob("landmarks-*.npz"))
    training = load_detector(out / "best").config.training
    assert training["sbi"] is True and training["extra_train"] == str(extra_dir) and training["degrade"] == 1.0
    assert training["fake_subset"] == 2


def test_real_only_and_fake_subset_exclude_each_other_and_a_negative_subset_is_refused(capsys):
    from train.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--model", "resnet8", "--data", "unused", "--output-dir", "unused", "--real-only",
                    "--fake-subset", "10"])
    assert "exclude each other" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--model", "resnet8", "--data", "unused", "--output-dir", "unused", "--fake-subset", "-1"])
    assert "must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--teacher-logits", "cache.safetensors"], ["--teacher-views", "2"]])
def test_distillation_options_without_a_teacher_are_an_error(flags):
    from train.train import parse_args, training_source

    args = parse_args(["--model", "resnet8", "--data", "unused", "--output-dir", "unused", *flags])
    with pytest.raises(ValueError, match="--teacher is required"):
        training_source(args, DeepfakeDetector.create("resnet8").config, None, torch.device("cpu"))
