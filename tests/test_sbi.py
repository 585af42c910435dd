"""Self-blended images on real DFDC crops: masks cover the face, blends change only inside them."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from train.sbi import LandmarkDetector, SelfBlendDataset, cached_landmarks, self_blend

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT.parent / "shared" / "data" / "dfdc_faces" / "data" / "validation-00000-of-00001.parquet"

pytestmark = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")


@pytest.fixture(scope="module")
def rows() -> datasets.Dataset:
    """Twelve real and four fake validation crops, plus one noise image where no face can be found."""
    ds = datasets.load_dataset("parquet", data_files={"validation": str(VAL_FILE)}, split="validation")
    labels = np.asarray(ds["label"][:200])
    picked = np.concatenate([np.flatnonzero(labels == 0)[:12], np.flatnonzero(labels == 1)[:4]]).tolist()
    ds = ds.select(picked).select_columns(["image", "label"])
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    extra = datasets.Dataset.from_dict({"image": [noise], "label": [0]}, features=ds.features)
    return datasets.concatenate_datasets([ds, extra])


@pytest.fixture(scope="module")
def landmarks(rows, tmp_path_factory) -> tuple[np.ndarray, Path]:
    cache = tmp_path_factory.mktemp("landmarks")
    return cached_landmarks(rows, cache), cache


def test_landmarks_are_cached_skipped_and_counted(rows, landmarks):
    points, cache = landmarks
    assert points.shape == (len(rows), 68, 2)
    found = np.isfinite(points[:, 0, 0])
    assert not found[-1], "noise has no face"
    assert not found[12:16].any(), "fake rows are never blended, so get no landmarks"
    assert found[:12].sum() >= 8, "most real DFDC crops have a face dlib finds"
    assert np.all((points[found] > -0.2) & (points[found] < 1.2))
    (record_file,) = cache.glob("landmarks-*.json")
    record = json.loads(record_file.read_text())
    assert record["real"] == 13 and record["found"] + record["skipped"] == 13 and record["skipped"] >= 1
    np.testing.assert_array_equal(cached_landmarks(rows, cache), points)  # read back, not recomputed
    np.testing.assert_array_equal(cached_landmarks(rows.select([2, 0]), cache), points[[2, 0]])
    assert len(list(cache.glob("landmarks-*.npz"))) == 1, "a subset of known rows computes nothing"


def test_blend_changes_only_inside_the_mask(rows, landmarks):
    points = landmarks[0]
    blended = 0
    for i in np.flatnonzero(np.isfinite(points[:, 0, 0])):
        img = np.asarray(rows[int(i)]["image"].convert("RGB"))
        for seed in range(3):
            b = self_blend(img, points[i] * [img.shape[1], img.shape[0]], np.random.default_rng(seed))
            assert b.image.shape == img.shape and b.image.dtype == np.uint8
            assert 0.0 <= b.mask.min() and b.mask.max() <= 1.0
            coverage = float((b.mask > 0.01).mean())
            assert 0.1 < coverage < 0.95, coverage
            outside = b.mask == 0
            assert outside.any()
            np.testing.assert_array_equal(b.image[outside], b.target[outside])
            inside = b.mask > 0.2
            assert np.abs(b.image[inside].astype(int) - b.target[inside].astype(int)).mean() > 0.5
            blended += 1
    assert blended >= 24


def test_blends_are_drawn_anew_but_repeat_with_the_seed(rows):
    img = np.asarray(rows[0]["image"].convert("RGB"))
    points = LandmarkDetector()(img)
    assert points is not None
    a, b = (self_blend(img, points, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(a.image, b.image)
    c = self_blend(img, points, np.random.default_rng(8))
    assert not np.array_equal(a.image, c.image)


def test_dataset_appends_one_fake_per_real_with_landmarks(rows, landmarks):
    points = landmarks[0]
    ds = SelfBlendDataset(rows, lambda x: x.float() / 255, points)
    real_with_face = int(np.isfinite(points[:, 0, 0]).sum())
    assert len(ds) == len(rows) + real_with_face
    assert ds.labels[len(rows):] == [1] * real_with_face and len(ds.labels) == len(ds)
    torch.manual_seed(0)
    x, y, index = ds[len(rows)]
    assert y == 1 and index == len(rows) and x.shape == (3, 224, 224)
    torch.manual_seed(0)
    np.testing.assert_array_equal(ds[len(rows)][0].numpy(), x.numpy())
    with pytest.raises(ValueError, match="landmark rows"):
        SelfBlendDataset(rows, lambda x: x, points[:3])


def test_rows_get_the_targets_jitter_as_often_as_blends_do(rows, landmarks):
    """Reals and fakes alike are globally jittered about half of the time, so sharpness is no cue."""
    points = landmarks[0]
    ds = SelfBlendDataset(rows, lambda x: x, points)
    torch.manual_seed(1)
    changed = []
    for _ in range(20):
        for i in (0, 12):  # a real and a fake row
            original = np.asarray(rows[i]["image"].convert("RGB"))
            changed.append(not np.array_equal(ds[i][0].permute(1, 2, 0).numpy(), original))
    share = float(np.mean(changed))
    assert 0.25 < share < 0.75, share
