"""The student's transfer set: fixed self-blends of the real crops and the faces of real photos, as a parquet split."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from media_factory import astronaut_image
from train.data import load_split, photo_halves
from train.transfer_set import build

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT.parent / "shared" / "data" / "dfdc_faces" / "data" / "validation-00000-of-00001.parquet"

pytestmark = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, Path]:
    tmp = tmp_path_factory.mktemp("transfer")
    rows = datasets.load_dataset("parquet", data_files={"train": str(VAL_FILE)}, split="train").select(range(24))
    rows.to_parquet(str(tmp / "crops.parquet"))
    photos = tmp / "photos"
    photos.mkdir()
    for i in range(4):  # 0 and 2 are the transfer half: a face, and noise where no face is found
        image = astronaut_image() if i != 2 else np.random.default_rng(i).integers(0, 256, (300, 300, 3), np.uint8)
        Image.fromarray(image).save(photos / f"photo{i}.jpg")
    record = build(str(tmp / "crops.parquet"), photos, tmp / "out", tmp / "landmarks", seed=3)
    return tmp / "out", record, photos


def test_photos_split_in_two_halves_by_name(built):
    transfer, unseen = photo_halves(built[2])
    assert [p.name for p in transfer] == ["photo0.jpg", "photo2.jpg"]
    assert [p.name for p in unseen] == ["photo1.jpg", "photo3.jpg"]


def test_blends_and_photo_faces_are_written_and_counted(built):
    out, record, _ = built
    assert record["photo_faces"] == {"photos": 2, "cropped": 1, "no_face": 1}
    blends = record["self_blends"]
    assert blends["blended"] + blends["skipped_no_landmarks"] == blends["real_rows"] and blends["blended"] > 0
    assert json.loads((out / "record.json").read_text()) == record
    rows = load_split(out, "train")
    assert len(rows) == record["rows"] == blends["blended"] + 1
    labels = rows["label"]
    assert labels.count(1) == blends["blended"] and labels[-1] == 0
    assert rows[-1]["group"] == "photo:photo0" and rows[-1]["image"].size == (224, 224)


def test_the_same_seed_gives_the_same_blends(built, tmp_path):
    out, record, photos = built
    crops = out.parent / "crops.parquet"
    again = build(str(crops), photos, tmp_path / "again", out.parent / "landmarks", seed=3)
    assert again["rows"] == record["rows"]
    a, b = (load_split(d, "train") for d in (out, tmp_path / "again"))
    assert np.array_equal(np.asarray(a[0]["image"]), np.asarray(b[0]["image"]))
