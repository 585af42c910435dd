"""Every data source becomes image/label/group rows; DFDC groups come from ``original``; subsets are seeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from deepfake_space.models import default_config
from deepfake_space.transforms import build_eval_transform
from train.data import TorchImageDataset, content_fingerprint, fewer_fakes, load_split, real_rows, subset

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dfdc_faces"
VAL_FILE = DATA / "data" / "validation-00000-of-00001.parquet"
COLUMNS = ["image", "label", "group"]

needs_data = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")


@pytest.fixture(scope="module")
def val_file():
    return load_split(VAL_FILE, "validation")


@pytest.fixture(scope="module")
def raw_val():
    return pq.read_table(VAL_FILE, columns=["label", "video", "original"]).to_pydict()


@needs_data
def test_parquet_folder(val_file):
    ds = load_split(DATA, "validation")
    assert ds.column_names == COLUMNS
    assert len(ds) == 3531 == len(val_file)
    assert ds[0]["group"] == val_file[0]["group"]
    assert isinstance(ds[0]["image"], Image.Image)
    assert set(ds.unique("label")) == {0, 1}


@needs_data
def test_single_parquet_file(val_file, raw_val):
    assert val_file.column_names == COLUMNS
    assert len(val_file) == 3531
    img = val_file[0]["image"]
    assert isinstance(img, Image.Image) and img.size == (224, 224)
    assert val_file["label"][:50] == raw_val["label"][:50]


@needs_data
def test_dfdc_groups_come_from_original_so_a_fake_and_its_real_share_one(val_file, raw_val):
    groups = list(val_file["group"])
    assert groups == raw_val["original"]
    reals = {v: i for i, (v, label) in enumerate(zip(raw_val["video"], raw_val["label"])) if label == 0}
    pairs = [(i, reals[o]) for i, (o, label) in enumerate(zip(raw_val["original"], raw_val["label"]))
             if label == 1 and o in reals]
    assert pairs, "the validation split should hold some fakes together with their real video"
    for fake_row, real_row in pairs[:20]:
        assert groups[fake_row] == groups[real_row]
        assert val_file[fake_row]["label"] == 1 and val_file[real_row]["label"] == 0


@needs_data
def test_group_column_can_be_chosen(raw_val):
    by_video = load_split(VAL_FILE, "validation", group_column="video")
    assert list(by_video["group"]) == raw_val["video"]
    with pytest.raises(ValueError, match="no column 'speaker'"):
        load_split(VAL_FILE, "validation", group_column="speaker")


def _imagefolder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, names in (("real", ["alice_0", "alice_1", "bob_0"]), ("fake", ["alice_2", "carol_0"])):
        (root / label).mkdir(parents=True)
        for name in names:
            Image.fromarray(rng.integers(0, 255, (40, 32, 3), dtype=np.uint8)).save(root / label / f"{name}.jpg")
    (root / "real" / "notes.txt").write_text("not an image")
    return root


def test_imagefolder(tmp_path):
    ds = load_split(_imagefolder(tmp_path / "faces"))
    assert ds.column_names == COLUMNS
    assert len(ds) == 5
    rows = sorted(zip(ds["label"], ds["group"]))
    assert rows == [(0, "alice"), (0, "alice"), (0, "bob"), (1, "alice"), (1, "carol")]
    assert ds[0]["image"].size == (32, 40)


def test_empty_imagefolder_and_missing_path_are_errors(tmp_path):
    (tmp_path / "empty" / "real").mkdir(parents=True)
    (tmp_path / "empty" / "fake").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_split(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "nothing_here")


@needs_data
def test_subset_is_seeded(val_file):
    a, b = subset(val_file, 16, seed=3), subset(val_file, 16, seed=3)
    c = subset(val_file, 16, seed=4)
    assert len(a) == 16
    assert a["group"] == b["group"]
    assert a["group"] != c["group"]
    assert subset(val_file, None) is val_file
    assert subset(val_file, 10**6) is val_file


@needs_data
def test_real_only_keeps_every_real_row_and_no_fake(val_file):
    rows = subset(val_file, 200, seed=0)
    reals = real_rows(rows)
    assert set(reals["label"]) == {0}
    assert len(reals) == rows["label"].count(0) > 0
    assert reals["group"] == [g for g, label in zip(rows["group"], rows["label"]) if label == 0]


@needs_data
def test_fewer_fakes_keeps_every_real_and_a_seeded_share_of_fakes(val_file):
    rows = subset(val_file, 200, seed=0)
    rows = rows.add_column("row", list(range(len(rows))))
    kept = fewer_fakes(rows, 10, seed=1)
    assert kept["label"].count(1) == 10
    reals = [i for i, label in enumerate(rows["label"]) if label == 0]
    assert [i for i, label in zip(kept["row"], kept["label"]) if label == 0] == reals
    assert kept["row"] == sorted(kept["row"])
    assert kept["row"] == fewer_fakes(rows, 10, seed=1)["row"]
    assert kept["row"] != fewer_fakes(rows, 10, seed=2)["row"]
    assert len(fewer_fakes(rows, 10**6)) == len(rows)


@needs_data
def test_content_fingerprint_follows_the_data_not_the_files(val_file, tmp_path):
    copy = tmp_path / "copy" / "validation-00000-of-00001.parquet"
    copy.parent.mkdir()
    shutil.copyfile(VAL_FILE, copy)
    moved = load_split(copy, "validation")
    assert moved._fingerprint != val_file._fingerprint
    assert content_fingerprint(moved) == content_fingerprint(val_file)
    rows = subset(val_file, 16, seed=3)
    assert content_fingerprint(rows) != content_fingerprint(subset(val_file, 16, seed=4))
    flipped = rows.map(lambda row: {"label": 1 - row["label"]})
    assert content_fingerprint(flipped) != content_fingerprint(rows)


def test_torch_dataset_returns_tensor_label_index(tmp_path):
    ds = load_split(_imagefolder(tmp_path / "faces"))
    config = default_config("resnet8", input_size=48)
    torch_ds = TorchImageDataset(ds, build_eval_transform(config))
    x, label, index = torch_ds[3]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert (label, index) == (ds[3]["label"], 3)


@needs_data
def test_decoded_rows_feed_the_model_exactly_like_decoding_each_time(val_file, tmp_path):
    from deepfake_space.transforms import resize_size
    from train.decoded import decoded_images

    rows = subset(val_file, 24, seed=3)
    config = default_config("resnet8")
    transform = build_eval_transform(config)
    array = decoded_images(rows, resize_size(config), config.interpolation, tmp_path)
    assert array.shape == (24, 112, 112, 3) and array.dtype == np.uint8
    plain, fast = TorchImageDataset(rows, transform), TorchImageDataset(rows, transform, array)
    for i in (0, 7, 23):
        x, y, idx = fast[i]
        x0, y0, _ = plain[i]
        assert (y, idx) == (y0, i)
        assert torch.allclose(x, x0, atol=1e-6)
    again = decoded_images(rows, resize_size(config), config.interpolation, tmp_path)
    assert np.array_equal(again, array)
    sidecar = next(tmp_path.glob("*.json"))
    sidecar.write_text(sidecar.read_text().replace('"n": 24', '"n": 25'))
    with pytest.raises(ValueError, match="holds other images"):
        decoded_images(rows, resize_size(config), config.interpolation, tmp_path)
    with pytest.raises(ValueError, match="decoded array has 24 images for 23 rows"):
        TorchImageDataset(rows.select(range(23)), transform, array)
