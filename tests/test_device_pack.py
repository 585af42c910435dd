"""The GPU machine's data pack: parts under the per-call budget that add up to the whole run, crops back at their
video size, landmarks that need no dlib there, and the device script's whole path run here without PyAV, dlib or
MediaPipe (as the GPU machine has none of them)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import train.sbi
from train.data import load_split
from train.device_pack import assign_parts, merge, pack
from train.sbi import cached_landmarks

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT.parent / "shared" / "data" / "dfdc_faces" / "data" / "validation-00000-of-00001.parquet"
BUDGET_MB = 0.1
FAKES = 6

pytestmark = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, dict, datasets.Dataset]:
    """A pack of a small DFDC-shaped folder (validation crops as its train and validation splits) with photo rows."""
    tmp = tmp_path_factory.mktemp("pack")
    rows = datasets.load_dataset("parquet", data_files={"train": str(VAL_FILE)}, split="train")
    labels = np.asarray(rows["label"])
    train = rows.select([*np.flatnonzero(labels == 0)[:14], *np.flatnonzero(labels == 1)[:10]])
    (tmp / "dfdc" / "data").mkdir(parents=True)
    train.to_parquet(str(tmp / "dfdc" / "data" / "train-00000-of-00001.parquet"))
    rows.select(range(100, 112)).to_parquet(str(tmp / "dfdc" / "data" / "validation-00000-of-00001.parquet"))
    photos = rows.select(np.flatnonzero(labels == 0)[20:23]).select_columns(["image", "label", "original"])
    (tmp / "photos").mkdir()
    photos.rename_column("original", "group").to_parquet(str(tmp / "photos" / "photos.parquet"))
    manifest = pack(tmp / "dfdc", tmp / "photos", tmp / "out", fakes=FAKES, val=None, part_mb=BUDGET_MB,
                    landmark_cache=tmp / "landmarks", shard_rows=5)
    return tmp / "out", manifest, train


def test_parts_fit_the_budget_and_hold_every_file_once(packed):
    out, manifest, _ = packed
    assert len(manifest["parts"]) > 1
    files = [f for p in manifest["parts"] for f in p["files"]]
    assert len(files) == len(set(files))
    for part in manifest["parts"]:
        on_disk = sorted(str(f.relative_to(out / part["name"])) for f in (out / part["name"]).rglob("*") if f.is_file())
        assert on_disk == part["files"]
        assert part["bytes"] <= BUDGET_MB * 2**20
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not (out / "all").exists()


def test_merged_parts_are_every_real_some_fakes_and_the_whole_validation(packed, tmp_path):
    out, manifest, train = packed
    folder = merge(shutil.copytree(out, tmp_path / "pack"))
    rows = load_split(folder / "dfdc", "train")
    assert rows["label"].count(0) == 14 and rows["label"].count(1) == FAKES == manifest["train_fake"]
    assert len(load_split(folder / "dfdc", "validation")) == manifest["val_rows"] == 12
    assert len(load_split(folder / "photos", "train")) == manifest["extra_rows"] == 3
    widths = {str(r["original"]): int(r["width"]) for r in train if r["label"] == 0}
    for row in rows:
        if row["label"] == 0:  # one real per source video: the crop is back at the size it had there
            side = min(224, widths[row["group"]])
            assert row["image"].size == (side, side)


def test_landmarks_are_all_in_the_pack(packed, tmp_path, monkeypatch):
    out, manifest, _ = packed
    folder = merge(shutil.copytree(out, tmp_path / "pack"))

    def no_dlib():
        raise AssertionError("the device has no dlib: every landmark must come from the pack")

    monkeypatch.setattr(train.sbi, "LandmarkDetector", no_dlib)
    rows = datasets.concatenate_datasets([load_split(folder / "dfdc", "train"), load_split(folder / "photos", "train")])
    points = cached_landmarks(rows, folder / "landmarks")
    found = np.isfinite(points[:, 0, 0])
    assert found.sum() == manifest["reals_with_landmarks"] > 0
    assert not found[np.asarray(rows["label"]) == 1].any()


def test_a_file_larger_than_a_part_is_refused(tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * 100)
    assert assign_parts([small], 50) == [[small]]
    with pytest.raises(ValueError, match="big"):
        assign_parts([small, big], 50)


def test_the_device_script_trains_here_without_pyav_dlib_or_mediapipe(packed, tmp_path):
    """train/gpu_teacher.sh end to end, two steps, in a copy of the checkout where those three cannot be imported."""
    out, _, _ = packed
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("train", "deepfake_space", "models"):
        (work / name).symlink_to(ROOT / name)
    shutil.copytree(out, work / "pack")
    blocked = tmp_path / "blocked"
    for module in ("av", "dlib", "mediapipe"):
        (blocked / module).mkdir(parents=True)
        (blocked / module / "__init__.py").write_text(f"raise ImportError('{module} is not installed')\n")
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "OUT": str(results), "WHEELS": "", "PYTHONPATH": str(blocked),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "train" / "gpu_teacher.sh"), "--max-steps", "2", "--num-workers", "0",
                           "--mixed-precision", "no", "--batch-size", "4"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "train.train exit status 0" in (results / "train.log").read_text()
    config = json.loads((results / "best" / "config.json").read_text())
    assert config["training"]["sbi"] and config["training"]["degrade_off"] == "h264"
    assert (results / "best" / "model.safetensors").stat().st_size > 1e6
    with (results / "summary.csv").open(newline="") as f:
        assert [(r["epoch"], r["step"]) for r in csv.DictReader(f)] == [("0", "2")]


def test_a_missing_part_stops_the_device_script_before_training(packed, tmp_path):
    out, _, _ = packed
    work = tmp_path / "checkout"
    shutil.copytree(out, work / "pack")
    shutil.rmtree(work / "pack" / "part-2")
    done = subprocess.run(["bash", str(ROOT / "train" / "gpu_teacher.sh")], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path), "WHEELS": "",
                               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}, timeout=120)
    assert done.returncode != 0 and "part-2" in done.stderr
    assert not (tmp_path / "train.log").exists()


def test_jpeg_keeps_the_image_when_no_smaller_side_is_asked():
    from train.device_pack import jpeg

    buf = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(buf, "PNG")
    assert Image.open(io.BytesIO(jpeg(buf.getvalue(), 90))).size == (40, 40)
    assert Image.open(io.BytesIO(jpeg(buf.getvalue(), 90, 20))).size == (20, 20)
