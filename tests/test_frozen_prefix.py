"""The frozen-prefix fine-tune: the split network is the network, the bank holds what the app would compute, only
the suffix trains, and a stopped run resumes after its last epoch."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepfake_space.models import load_detector
from deepfake_space.transforms import build_eval_transform
from train.data import TorchImageDataset, load_split, subset
from train.frozen_prefix import Prefix, Suffix, bank_entries, main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dfdc_faces"
TEACHER = ROOT / "models" / "teacher"
VAL_SUBSET, SEED = 32, 42


def test_prefix_then_suffix_is_the_network():
    net = load_detector(TEACHER).net.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(Suffix(net, 5)(Prefix(net, 5)(x)), net(x), rtol=1e-4, atol=1e-4)
    trainable = {id(p) for p in Suffix(net, 5).trainable()}
    frozen = [n for n, p in net.named_parameters() if id(p) not in trainable]
    assert frozen and all(n.startswith(("conv_stem", "bn1", *[f"blocks.{i}." for i in range(5)])) for n in frozen)


def test_bank_entries_leave_out_only_the_datasets_fakes():
    labels = np.array([0, 1, 1, 0, 1, 1])  # four dataset rows (two fakes), then two self-blends
    assert bank_entries(labels, 4, dataset_fakes=True).tolist() == [0, 1, 2, 3, 4, 5]
    assert bank_entries(labels, 4, dataset_fakes=False).tolist() == [0, 3, 4, 5]


def _run(out: Path, tmp: Path, epochs: int) -> None:
    main(["--init", str(TEACHER), "--data", str(DATA), "--train-subset", "24", "--val-subset", str(VAL_SUBSET),
          "--fakes", "5000", "--epochs", str(epochs), "--batch-size", "8", "--warmup-steps", "1",
          "--num-workers", "0", "--bank-dir", str(tmp / "bank"), "--landmark-cache", str(tmp / "landmarks"),
          "--seed", str(SEED), "--output-dir", str(out)])


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not available")
def test_fine_tune_saves_a_whole_detector_and_resumes(tmp_path):
    out = tmp_path / "run"
    _run(out, tmp_path, epochs=1)
    _run(out, tmp_path, epochs=2)  # resumes after epoch 0, reusing both banks
    with (out / "summary.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1]

    teacher, tuned = load_detector(TEACHER), load_detector(out / "best")
    before, after = teacher.net.state_dict(), tuned.net.state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith(("conv_stem", "bn1", *[f"blocks.{i}." for i in range(5)])):
            assert same, f"{name} is frozen but changed"
    assert not all(torch.equal(before[n], after[n]) for n in before if n.startswith("classifier"))
    assert 0.02 <= tuned.config.threshold <= 0.98
    assert tuned.config.training["frozen_prefix"]["split_at"] == 5

    # the validation AUC the run recorded is the one the saved detector gets through the evaluation transform
    val = subset(load_split(DATA, "validation"), VAL_SUBSET, SEED)
    ds = TorchImageDataset(val, build_eval_transform(tuned.config))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    p = tuned.predict_proba(x).numpy()
    assert roc_auc_score(np.asarray(val["label"]), p) == pytest.approx(tuned.config.training["val_auc"], abs=0.02)
