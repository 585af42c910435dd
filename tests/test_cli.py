"""The command line: predict prints a table, batch writes one honest row per file and resumes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from app_server import make_models

from deepfake_space.cli import main
from deepfake_space.synth import astronaut


@pytest.fixture(scope="module")
def model_args(tmp_path_factory) -> list[str]:
    specs = make_models(tmp_path_factory.mktemp("cli_models"), {"teacher": ("resnet8", 64), "student": ("resnet8", 64)})
    return [arg for name, folder in specs.items() for arg in ("--model", f"{name}={folder}")]


@pytest.fixture()
def inbox(tmp_path):
    Image.fromarray(astronaut()).save(tmp_path / "face.png")
    Image.new("RGB", (200, 150), (30, 120, 200)).save(tmp_path / "sky.jpg")
    (tmp_path / "fake_video.mp4").write_text("not a video at all")
    (tmp_path / "empty.webm").write_bytes(b"")
    return tmp_path


def _rows(path):
    with open(path, newline="") as f:
        return {r["filename"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}


def test_predict_prints_both_models(model_args, inbox, capsys):
    assert main([*model_args, "predict", str(inbox / "face.png")]) == 0
    out = capsys.readouterr().out
    assert "teacher" in out and "student" in out and "status: ok" in out


def test_batch_writes_status_per_row_and_resumes(model_args, inbox, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "results.csv"
    assert main([*model_args, "batch", str(inbox), "--out", str(out)]) == 0
    rows = _rows(out)
    assert rows["face.png"]["status"] == "ok"
    assert rows["face.png"]["teacher_verdict"] in {"fake", "real", "uncertain"}
    assert rows["sky.jpg"]["status"] == "no_face" and rows["sky.jpg"]["teacher_p_fake"] == ""
    for bad in ("fake_video.mp4", "empty.webm"):
        assert rows[bad]["status"] == "error" and rows[bad]["message"]
        assert rows[bad]["teacher_verdict"] == "" and rows[bad]["student_p_fake"] == ""
    (inbox / "face2.png").write_bytes((inbox / "face.png").read_bytes())
    assert main([*model_args, "batch", str(inbox), "--out", str(out)]) == 0
    with open(out, newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 5 and len({r["filename"] for r in lines}) == 5


def test_missing_model_is_a_clear_error(inbox, capsys):
    assert main(["--model", "teacher=/nonexistent/folder", "predict", str(inbox / "face.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_threads_option_sets_torch_threads_and_rejects_zero(model_args, inbox, capsys):
    before = torch.get_num_threads()
    try:
        assert main([*model_args, "--threads", "1", "predict", str(inbox / "face.png")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main([*model_args, "--threads", "0", "predict", str(inbox / "face.png")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def _scored(path):
    """Each file's row without the run-dependent columns (none: the same models give the same scores)."""
    return {name: {k: v for k, v in row.items() if k != "filename"} for name, row in _rows(path).items()}


def test_two_processes_write_the_csv_one_process_writes(model_args, inbox, tmp_path):
    for i in range(3):  # more files than processes, so each rank gets several
        (inbox / f"face{i}.png").write_bytes((inbox / "face.png").read_bytes())
    single = tmp_path / "single.csv"
    assert main([*model_args, "--threads", "1", "batch", str(inbox), "--out", str(single), "--prefetch", "0"]) == 0
    pair = tmp_path / "pair.csv"
    # accelerate's multi-process launcher (torchrun underneath) is --multi_gpu, on CPUs too (gloo)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "deepfake_space"]
    done = subprocess.run([*launch, *model_args, "batch", str(inbox), "--out", str(pair)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shard 0 of 2" in done.stdout and "shard 1 of 2" in done.stdout
    assert _scored(pair) == _scored(single)
    assert not list(tmp_path.glob("pair.part*")), "rank 0 merged and removed the parts"


def test_pipelined_batch_matches_one_file_after_another_and_resumes_parts(model_args, inbox, tmp_path):
    from deepfake_space.batch import Shard, list_inputs, run_batch
    from deepfake_space.detector import Detector

    inputs = list_inputs(inbox)
    specs = dict(arg.split("=", 1) for arg in model_args[1::2])
    with Detector(specs, device="cpu") as detector:
        plain, piped = tmp_path / "plain.csv", tmp_path / "piped.csv"
        run_batch(detector, inputs, plain, prefetch=0, progress=False)
        run_batch(detector, inputs, piped, prefetch=2, progress=False)
        assert _scored(piped) == _scored(plain)
        # an interrupted two-process run left rank 1's part: a rerun alone keeps it and does the rest
        resumed = tmp_path / "resumed.csv"
        first = run_batch(detector, inputs, resumed, shard=Shard(1, 2), progress=False)
        assert first.written == len(inputs) // 2 and resumed.with_name("resumed.part1-of-2.csv").exists()
        rest = run_batch(detector, inputs, resumed, progress=False)
    assert rest.written == len(inputs) - first.written and rest.skipped == first.written
    assert _scored(resumed) == _scored(plain) and not list(tmp_path.glob("resumed.part*"))


def test_precision_per_model_or_for_all():
    from deepfake_space.cli import precisions
    from deepfake_space.errors import DeepfakeSpaceError

    specs = {"teacher": "a", "student": "b"}
    assert precisions([], specs) == {"teacher": "fp32", "student": "fp32"}
    assert precisions(["student=int8"], specs) == {"teacher": "fp32", "student": "int8"}
    assert precisions(["int8"], specs) == {"teacher": "int8", "student": "int8"}
    for bad in ("int4", "nobody=int8"):
        with pytest.raises(DeepfakeSpaceError, match="--precision"):
            precisions([bad], specs)
