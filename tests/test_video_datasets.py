"""Video dataset adapters on small synthesized trees laid out like FF++, DFDC and Celeb-DF."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from train.data import load_split
from train.video_datasets import celebdf_items, dfdc_items, extract_faces, ffpp_items
from deepfake_space.synth import write_face_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_face_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1, height=180, fps=10)


def _place(clip: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(clip, path)


def test_ffpp_groups_fakes_with_their_target(tmp_path, clip):
    for rel in ("original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/003.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
                "manipulated_sequences/FaceSwap/c23/videos/003_000.mp4"):
        _place(clip, tmp_path / rel)
    items = ffpp_items(tmp_path)
    assert [(i.path.name, i.label, i.group) for i in items] == [
        ("000.mp4", 0, "000"), ("003.mp4", 0, "003"), ("000_003.mp4", 1, "000"), ("003_000.mp4", 1, "003")]


def test_dfdc_reads_metadata_of_every_part(tmp_path, clip):
    for part, meta in (("dfdc_train_part_0", {"a.mp4": {"label": "REAL", "split": "train"},
                                              "b.mp4": {"label": "FAKE", "original": "a.mp4", "split": "train"}}),
                       ("dfdc_train_part_1", {"c.mp4": {"label": "REAL", "original": None}})):
        for name in meta:
            _place(clip, tmp_path / part / name)
        (tmp_path / part / "metadata.json").write_text(json.dumps(meta))
    items = dfdc_items(tmp_path)
    assert [(i.path.name, i.label, i.group) for i in items] == [("a.mp4", 0, "a.mp4"), ("b.mp4", 1, "a.mp4"),
                                                               ("c.mp4", 0, "c.mp4")]


def test_celebdf_flips_its_label_convention(tmp_path, clip):
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"):
        _place(clip, tmp_path / rel)
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n")
    items = celebdf_items(tmp_path)
    assert [(i.label, i.group) for i in items] == [(0, "id0"), (1, "id0")]


def test_extract_faces_writes_a_trainable_parquet(tmp_path, clip):
    for rel in ("original_sequences/youtube/c23/videos/000.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"):
        _place(clip, tmp_path / rel)
    (tmp_path / "original_sequences/youtube/c23/videos/001.mp4").write_text("broken")
    out = tmp_path / "crops.parquet"
    summary = extract_faces(ffpp_items(tmp_path), out, frames_per_video=3)
    assert summary["failed"] and "001.mp4" in summary["failed"][0]
    ds = load_split(out, "train")
    assert len(ds) == 6 and sorted(set(ds["label"])) == [0, 1] and set(ds["group"]) == {"000"}
    assert ds[0]["image"].size == (224, 224)
    assert "001.mp4" in out.with_suffix(".no_face.txt").read_text()
