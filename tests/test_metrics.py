"""Detection metrics with bootstrap CIs, and threshold picking."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn.metrics import roc_auc_score

from train.metrics import (compute_metrics, equal_error_rate, expected_calibration_error, logit_mean,
                           paired_auc_difference, pick_threshold)

METRICS = {"accuracy", "macro_f1", "roc_auc", "average_precision", "eer", "log_loss", "ece"}


def _contains(m: dict, slack: float = 1e-9) -> bool:
    return m["ci_low"] - slack <= m["value"] <= m["ci_high"] + slack


def test_perfect_classifier():
    y = np.array([0] * 40 + [1] * 60)
    p = np.where(y == 1, 0.9, 0.1)
    out = compute_metrics(y, p, threshold=0.5, n_boot=200)
    assert set(out) == METRICS
    assert out["roc_auc"]["value"] == 1.0 and out["roc_auc"]["ci_low"] == 1.0
    assert out["eer"]["value"] == 0.0
    assert out["accuracy"]["value"] == 1.0
    assert out["macro_f1"]["value"] == 1.0
    assert out["average_precision"]["value"] == 1.0
    assert out["log_loss"]["value"] == pytest.approx(-np.log(0.9))
    assert out["ece"]["value"] == pytest.approx(0.1)
    for name, m in out.items():
        assert set(m) == {"value", "ci_low", "ci_high"}
        assert _contains(m), name


def test_random_scores_are_near_chance_and_cis_contain_the_value():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    p = rng.random(1000)
    out = compute_metrics(y, p, n_boot=200, seed=1)
    assert out["roc_auc"]["value"] == pytest.approx(0.5, abs=0.05)
    assert out["eer"]["value"] == pytest.approx(0.5, abs=0.05)
    assert out["accuracy"]["value"] == pytest.approx(0.5, abs=0.05)
    assert out["roc_auc"]["ci_low"] < 0.5 + 0.01 and out["roc_auc"]["ci_high"] > 0.5 - 0.01
    for name in ("accuracy", "macro_f1", "roc_auc", "average_precision", "eer", "log_loss"):
        assert _contains(out[name]), name
        assert out[name]["ci_high"] - out[name]["ci_low"] < 0.15, name


def test_inverted_classifier_has_auc_zero():
    y = np.array([0, 0, 1, 1])
    out = compute_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), n_boot=50)
    assert out["roc_auc"]["value"] == 0.0
    assert out["eer"]["value"] == 1.0


def test_threshold_moves_the_thresholded_metrics_only():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.9])
    low = compute_metrics(y, p, threshold=0.3, n_boot=50)
    high = compute_metrics(y, p, threshold=0.37, n_boot=50)
    assert low["accuracy"]["value"] == pytest.approx(5 / 6)
    assert high["accuracy"]["value"] == 1.0
    assert low["roc_auc"] == high["roc_auc"]


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 2, 200), rng.random(200)
    assert compute_metrics(y, p, n_boot=100, seed=7) == compute_metrics(y, p, n_boot=100, seed=7)


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="both"):
        compute_metrics(np.ones(10), np.linspace(0, 1, 10))


def test_eer_and_ece_helpers():
    y = np.array([0, 0, 1, 1])
    assert equal_error_rate(y, np.array([0.1, 0.6, 0.4, 0.9])) == pytest.approx(0.5)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0
    assert expected_calibration_error(np.array([0, 0]), np.array([0.7, 0.7])) == pytest.approx(0.7)


def test_pick_threshold_separates_a_separable_case():
    rng = np.random.default_rng(0)
    real = rng.uniform(0.05, 0.30, 80)
    fake = rng.uniform(0.55, 0.95, 120)
    y = np.array([0] * 80 + [1] * 120)
    p = np.concatenate([real, fake])
    t = pick_threshold(y, p)
    assert 0.0 < t < 1.0
    assert real.max() <= t < fake.min()
    assert ((p > t).astype(int) == y).all()


def test_pick_threshold_follows_a_shifted_decision_boundary():
    """Scores all above 0.5 with a gap at 0.8: the picked cut lies in the gap, not at 0.5."""
    y = np.array([0] * 50 + [1] * 50)
    p = np.concatenate([np.linspace(0.6, 0.78, 50), np.linspace(0.82, 0.97, 50)])
    t = pick_threshold(y, p)
    assert 0.78 <= t < 0.82


def test_pick_threshold_stays_inside_the_clip_range():
    y = np.array([0] * 50 + [1] * 50)
    p = np.concatenate([np.full(50, 0.001), np.full(50, 0.005)])
    assert 0.02 <= pick_threshold(y, p) <= 0.98


def _two_models(n_groups: int = 60, per_group: int = 8, seed: int = 0):
    """Labels per group (video), a better model A and a worse model B scoring the same rows."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, n_groups), per_group)
    groups = [f"v{i}" for i in np.repeat(np.arange(n_groups), per_group)]
    video_effect = np.repeat(rng.normal(0, 0.8, n_groups), per_group)  # lighting, compression, the person
    signal = y + video_effect + rng.normal(0, 0.6, len(y))
    return y, groups, signal + rng.normal(0, 0.3, len(y)), signal + rng.normal(0, 1.5, len(y))


def test_paired_difference_finds_the_better_model():
    y, groups, a, b = _two_models()
    out = paired_auc_difference(y, a, b, groups, n_boot=300)
    assert out["auc_a"] > out["auc_b"]
    assert out["ci_low"] > 0 and out["p_not_better"] < 0.025
    assert out["units"] == 60
    swapped = paired_auc_difference(y, b, a, groups, n_boot=300)
    assert swapped["difference"] == pytest.approx(-out["difference"])
    assert swapped["ci_high"] < 0 and swapped["p_not_better"] > 0.975


def test_paired_difference_of_a_model_with_itself_is_zero_and_groups_widen_the_ci():
    y, groups, a, b = _two_models(per_group=20)
    same = paired_auc_difference(y, a, a, groups, n_boot=100)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0.0
    by_row = paired_auc_difference(y, a, b, None, n_boot=300)
    by_group = paired_auc_difference(y, a, b, groups, n_boot=300)
    assert by_row["units"] == len(y)
    # crops of one video are correlated: resampling videos gives the honest, wider interval
    assert by_group["ci_high"] - by_group["ci_low"] > by_row["ci_high"] - by_row["ci_low"]


def test_compare_reads_two_score_files_of_the_same_rows(tmp_path):
    from train.compare import compare
    from train.evaluate import write_scores

    y, groups, a, b = _two_models()
    index = np.arange(len(y))
    write_scores(tmp_path / "a.csv", index, groups, y, a)
    write_scores(tmp_path / "b.csv", index, groups, y, b)
    out = compare(tmp_path / "a.csv", tmp_path / "b.csv", n_boot=200)
    assert out["ci_low"] > 0 and out["units"] == 60
    write_scores(tmp_path / "other.csv", index[:-1], groups[:-1], y[:-1], b[:-1])
    with pytest.raises(ValueError, match="score different rows"):
        compare(tmp_path / "a.csv", tmp_path / "other.csv")


def test_separation_scores_one_files_reals_against_another_files_fakes(tmp_path):
    """Reals and the fakes made of them are scored in two runs (the validation split, its self-blends): only the
    reals of the first and the fakes of the second count."""
    from train.compare import separation
    from train.evaluate import write_scores

    index, groups = np.arange(4), np.array(["g"] * 4)
    write_scores(tmp_path / "val.csv", index, groups, np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.99, 0.99]))
    write_scores(tmp_path / "blends.csv", index, groups, np.array([1, 1, 1, 0]), np.array([0.2, 0.4, 0.5, 0.0]))
    # reals 0.1, 0.3 against blends 0.2, 0.4, 0.5: 5 of 6 pairs ordered; the val fakes and the blend file's real
    # (0.0) are left out
    assert separation(tmp_path / "val.csv", tmp_path / "blends.csv").startswith("0.833 (2 reals, 3 fakes; ")


def test_logit_mean_is_the_softmax_of_averaged_two_class_logits():
    z = np.random.default_rng(0).normal(0, 3, size=(2, 50, 2))
    p = np.exp(z[..., 1]) / np.exp(z).sum(-1)
    averaged = z.mean(0)
    assert np.allclose(logit_mean([p[0], p[1]]), np.exp(averaged[:, 1]) / np.exp(averaged).sum(-1))
    assert np.allclose(logit_mean([p[0], p[0]]), p[0])
    assert logit_mean([np.array([0.9]), np.array([0.1])]) == pytest.approx(0.5)


def test_compare_joins_score_files_with_plus_into_their_logit_average(tmp_path):
    from train.compare import compare, compare_files, compare_named, describe, on_both_sets, read_side
    from train.cross_domain import Scored, write_scores as write_file_scores
    from train.evaluate import write_scores

    y, groups, a, b = _two_models()
    pa, pb = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
    index = np.arange(len(y))
    write_scores(tmp_path / "a.csv", index, groups, y, pa)
    write_scores(tmp_path / "b.csv", index, groups, y, pb)
    pair = f"{tmp_path / 'a.csv'}+{tmp_path / 'b.csv'}"
    assert np.allclose(read_side(pair)[3], logit_mean([pa, pb]), atol=1e-5)  # the files keep 6 digits
    out = compare(pair, tmp_path / "b.csv", n_boot=200)
    assert out["auc_a"] == pytest.approx(roc_auc_score(y, a + b))
    write_scores(tmp_path / "other.csv", index[:-1], groups[:-1], y[:-1], pb[:-1])
    with pytest.raises(ValueError, match="score different rows"):
        read_side(f"{tmp_path / 'a.csv'}+{tmp_path / 'other.csv'}")

    files = [f"clip{i}.mp4" for i in range(len(y))]
    labels = ["fake" if v else "real" for v in y]
    write_file_scores(tmp_path / "wild.csv", [Scored(f, lab, "ok", {"a": float(x), "b": float(z)})
                                              for f, lab, x, z in zip(files, labels, pa, pb)], ["a", "b"])
    joined = compare_files(f"{tmp_path / 'wild.csv'}:a+{tmp_path / 'wild.csv'}:b", f"{tmp_path / 'wild.csv'}:b",
                           n_boot=200)
    assert joined["a"] == f"{tmp_path.name}/a+{tmp_path.name}/b" and joined["files"] == len(y)
    assert joined["auc_a"] == pytest.approx(roc_auc_score(y, a + b))
    rows_named, files_named = (compare_named({"a": str(tmp_path / "a.csv"), "b": str(tmp_path / "b.csv")},
                                             [("a+b", "b")], n_boot=200),
                               compare_named({"a": f"{tmp_path / 'wild.csv'}:a", "b": f"{tmp_path / 'wild.csv'}:b"},
                                             [("a+b", "b")], n_boot=200))
    assert rows_named[0]["a"] == "a+b" and rows_named[0]["auc_a"] == pytest.approx(out["auc_a"])
    assert files_named[0]["difference"] == pytest.approx(joined["difference"])
    assert describe(rows_named[0]).startswith(f"a+b ({out['auc_a']:.4f}) - b ({out['auc_b']:.4f}): ")
    report = on_both_sets({"a": str(tmp_path / "a.csv"), "b": str(tmp_path / "b.csv")},
                          {"a": f"{tmp_path / 'wild.csv'}:a", "b": f"{tmp_path / 'wild.csv'}:b"}, [("a+b", "b")])
    assert report[::2] == ["== DFDC validation", "== wild_dev"]
    assert report[1].startswith(f"  a+b ({out['auc_a']:.4f}) - b") and report[3].startswith(f"  a+b ({joined['auc_a']:.4f})")


def test_compare_files_pairs_videos_and_resamples_named_groups(tmp_path):
    """Two models' cross_domain score files: only files both scored count, and the two halves of one clip
    (``--group-regex``) are resampled as one unit."""
    from train.compare import compare_files, main
    from train.cross_domain import Scored, write_scores
    from train.evaluate import write_scores as write_row_scores

    y, _, a, b = _two_models(n_groups=40, per_group=1)
    sigmoid = 1 / (1 + np.exp(-np.stack([a, b])))
    files = [f"clip{i // 2}_{'right_swapped' if i % 2 else 'left_real'}.mp4" for i in range(len(y))]
    labels = ["fake" if v else "real" for v in y]
    rows = [Scored(f, lab, "ok", {"new": float(pa), "old": float(pb)})
            for f, lab, pa, pb in zip(files, labels, *sigmoid)]
    rows.append(Scored("noface.mp4", "real", "no_face", {"new": None, "old": None}, "no face found"))
    write_scores(tmp_path / "both.csv", rows, ["new", "old"])
    write_row_scores(tmp_path / "rows.csv", np.arange(len(y)), files, y, a)
    write_scores(tmp_path / "old.csv", [Scored(r.file, r.label, r.status, {"old": r.p_fake["old"]}) for r in rows[1:]],
                 ["old"])

    out = compare_files(f"{tmp_path / 'both.csv'}:new", str(tmp_path / "old.csv"), n_boot=200)
    assert out["files"] == len(y) - 1 and out["units"] == len(y) - 1 and out["left_out"] == 1
    assert out["difference"] > 0 and out["ci_low"] <= out["difference"] <= out["ci_high"]
    grouped = compare_files(f"{tmp_path / 'both.csv'}:new", f"{tmp_path / 'both.csv'}:old",
                            group_regex=r"^(.*)_(left_real|right_swapped)", n_boot=200)
    assert grouped["units"] == len(y) // 2 and grouped["files"] == len(y)
    with pytest.raises(ValueError, match="name one"):
        compare_files(str(tmp_path / "both.csv"), str(tmp_path / "old.csv"))
    with pytest.raises(ValueError, match="no scores for model 'gone'"):
        compare_files(f"{tmp_path / 'both.csv'}:gone", str(tmp_path / "old.csv"))
    with pytest.raises(ValueError, match="not a train.cross_domain scores CSV"):
        compare_files(str(tmp_path / "old.csv"), str(tmp_path / "rows.csv"))
    main([f"{tmp_path / 'both.csv'}:new", str(tmp_path / "old.csv"), "--n-boot", "50"])
    with pytest.raises(SystemExit, match="error: .*missing.csv"):
        main([str(tmp_path / "missing.csv"), str(tmp_path / "old.csv")])
