"""Consistent distillation: each stored view is reproducible, its logits are the teacher's on exactly that view,
the student is fed those pixels, and a bank of another teacher or seed is refused."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import train.teacher_views as teacher_views
from deepfake_space.models import DeepfakeDetector, default_config, load_detector
from deepfake_space.transforms import build_input_transform, build_train_transform, denormalize, model_layout
from train.data import load_split, subset
from train.teacher_views import SeededViews, ViewBankDataset, seeded, to_student_pixels, view_bank

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dfdc_faces"
VAL_FILE = DATA / "data" / "validation-00000-of-00001.parquet"

pytestmark = pytest.mark.skipif(not VAL_FILE.is_file(), reason=f"{VAL_FILE} is not available")

N, VIEWS = 12, 2


@pytest.fixture(scope="module")
def rows():
    return subset(load_split(VAL_FILE, "validation"), N, seed=3)


def _save(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = DeepfakeDetector.create("resnet8", input_size=64)
    model.save_pretrained(folder, config=model.config)
    return folder


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("teacher"), seed=0)


@pytest.fixture(scope="module")
def student():
    return default_config("resnet8", input_size=32)


@pytest.fixture(scope="module")
def bank(teacher, student, rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bank")
    images, logits = view_bank(str(teacher), student, rows, VIEWS, folder, batch_size=5)
    return folder, images, logits


def test_a_view_is_the_same_image_every_time_and_leaves_the_global_rngs_alone(rows, student):
    views = SeededViews(rows, build_train_transform(student), view=1, seed=0)
    torch.manual_seed(123)
    random.seed(123)
    first = views[4][0]
    after_torch, after_python = torch.rand(1), random.random()
    torch.manual_seed(123)
    random.seed(123)
    assert torch.equal(views[4][0], first)
    assert torch.equal(torch.rand(1), after_torch) and random.random() == after_python
    assert not torch.equal(SeededViews(rows, build_train_transform(student), view=0, seed=0)[4][0], first)
    assert not torch.equal(views[5][0], first)


def test_seeded_restores_the_rng_states_even_when_the_block_raises():
    torch.manual_seed(7)
    random.seed(7)
    expected = (torch.rand(1), random.random())
    torch.manual_seed(7)
    random.seed(7)
    with pytest.raises(RuntimeError), seeded(99):
        raise RuntimeError("boom")
    assert (torch.rand(1), random.random()) == expected


def test_bank_logits_are_the_teachers_on_the_stored_view(bank, teacher, student, rows):
    _, images, logits = bank
    assert len(images) == VIEWS and logits.shape == (VIEWS, N, 2)
    assert all(v.shape == (N, 32, 32, 3) and v.dtype == np.uint8 for v in images)
    model = load_detector(teacher)
    for k in range(VIEWS):
        views = SeededViews(rows, build_train_transform(model.config), view=k, seed=0)
        x = torch.stack([views[i][0] for i in range(N)])
        with torch.no_grad():
            assert torch.allclose(model(model_layout(x)), logits[k], atol=1e-4)
        assert np.array_equal(to_student_pixels(x, model.config, student).numpy(), images[k])
    assert not np.array_equal(images[0], images[1])


def test_a_stored_bank_is_reused_and_one_for_another_teacher_or_seed_refused(bank, teacher, student, rows,
                                                                            tmp_path, monkeypatch):
    folder, images, logits = bank

    def no_compute(*args, **kwargs):
        raise AssertionError("the stored views should have been reused")

    monkeypatch.setattr(teacher_views, "compute_view", no_compute)
    again_images, again_logits = view_bank(str(teacher), student, rows, VIEWS, folder)
    assert torch.equal(again_logits, logits) and np.array_equal(again_images[1], images[1])
    other = _save(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="another teacher, data or seed"):
        view_bank(str(other), student, rows, VIEWS, folder)
    with pytest.raises(ValueError, match="another teacher, data or seed"):
        view_bank(str(teacher), student, rows, VIEWS, folder, seed=1)


def test_the_student_cycles_through_the_views_with_matching_soft_target_indices(bank, student, rows):
    _, images, logits = bank
    ds = ViewBankDataset(images, rows, student)
    flat = logits.reshape(-1, 2)
    to_input = build_input_transform(student)  # the same normalisation as at inference
    seen = set()
    for epoch in range(VIEWS):
        ds.set_epoch(epoch)
        x, y, j = ds[3]
        k = (epoch + 3) % VIEWS
        seen.add(k)
        assert j == k * N + 3 and y == rows[3]["label"]
        assert torch.equal(flat[j], logits[k, 3])
        expected = to_input(torch.from_numpy(images[k][3].copy()).permute(2, 0, 1))
        assert torch.equal(x, expected)
        pixels = (denormalize(x, student) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(pixels, images[k][3])
    assert seen == set(range(VIEWS))
    with pytest.raises(ValueError, match="views hold"):
        ViewBankDataset(images, rows.select(range(N - 1)), student)


def _train_on_bank(folder: Path, teacher: Path, output_dir: Path, *extra: str) -> None:
    from train.train import main as train_main

    train_main(["--model", "resnet8", "--data", str(VAL_FILE), "--train-split", "validation",
                "--train-subset", str(N), "--val-subset", "16", "--batch-size", "4", "--epochs", "2",
                "--checkpointing-steps", "0", "--input-size", "32", "--num-workers", "0", "--seed", "3",
                "--teacher", str(teacher), "--teacher-views", str(VIEWS), "--teacher-views-dir", str(folder),
                "--output-dir", str(output_dir), *extra])


def test_training_on_a_view_bank_records_it(bank, teacher, tmp_path):
    folder, _, _ = bank
    _train_on_bank(folder, teacher, tmp_path / "run")
    best = load_detector(tmp_path / "run" / "best")
    assert best.config.training["teacher_views"] == VIEWS
    assert best.config.training["teacher_views_seed"] == 0
    assert best.config.training["teacher"] == str(teacher)


def test_training_with_another_view_seed_refuses_a_bank_drawn_with_this_one(bank, teacher, tmp_path):
    folder, _, _ = bank
    with pytest.raises(ValueError, match="another teacher, data or seed"):
        _train_on_bank(folder, teacher, tmp_path / "run", "--teacher-views-seed", "1")


@pytest.fixture(scope="module")
def degraded_bank(teacher, student, rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("degraded")
    images, logits = view_bank(str(teacher), student, rows, VIEWS, folder, batch_size=5, degrade=1.0)
    return folder, images, logits


def test_a_degraded_bank_keeps_the_teachers_clean_logits_and_degrades_only_the_students_pixels(
        bank, degraded_bank, teacher, student, rows, tmp_path):
    _, clean_images, clean_logits = bank
    folder, images, logits = degraded_bank
    assert torch.equal(logits, clean_logits)  # the teacher scored the same, undegraded views
    diff = [np.abs(a.astype(int) - b).mean() for k in range(VIEWS) for a, b in zip(images[k], clean_images[k])]
    assert 0 < min(diff) and max(diff) < 40  # each face changed, and still the same face
    again, _ = view_bank(str(teacher), student, rows, VIEWS, tmp_path, batch_size=5, degrade=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(again, images))  # seeded per view: the same on every run
    with pytest.raises(ValueError, match="another teacher, data or seed"):
        view_bank(str(teacher), student, rows, VIEWS, folder)


def test_labels_only_training_on_a_bank_uses_its_pixels_not_its_logits(bank, teacher, tmp_path):
    folder, _, _ = bank
    _train_on_bank(folder, teacher, tmp_path / "run", "--kd", "none")
    training = load_detector(tmp_path / "run" / "best").config.training
    assert training["teacher"] is None and training["kd"] is None and training["teacher_weights"] is None
    assert training["view_bank_teacher"] == str(teacher) and training["teacher_views"] == VIEWS


def test_labels_only_refuses_a_teacher_without_a_bank(teacher, tmp_path):
    from train.train import main as train_main

    with pytest.raises(ValueError, match="labels only"):
        train_main(["--model", "resnet8", "--data", str(VAL_FILE), "--train-split", "validation", "--train-subset",
                    str(N), "--input-size", "32", "--teacher", str(teacher), "--kd", "none",
                    "--output-dir", str(tmp_path / "run")])


def test_an_extra_split_is_appended_as_many_times_as_asked(rows, tmp_path):
    from train.data import with_extra

    extra = tmp_path / "extra"
    (extra / "data").mkdir(parents=True)
    rows.select(range(3)).to_parquet(str(extra / "data" / "train-00000-of-00001.parquet"))
    assert len(with_extra(rows, None)) == N
    grown = with_extra(rows, extra, repeat=4)
    assert len(grown) == N + 12 and grown[N + 3]["group"] == grown[N]["group"] == rows[0]["group"]
