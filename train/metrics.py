"""Detection metrics with bootstrap confidence intervals (scikit-learn), and threshold selection."""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score,
                             roc_curve)


def equal_error_rate(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(y, p)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """ECE of P(fake) as a binary probability, equal-width bins."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(ece)


def _point_metrics(threshold: float) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    return {
        "accuracy": lambda y, p: accuracy_score(y, p > threshold),
        "macro_f1": lambda y, p: f1_score(y, p > threshold, average="macro"),
        "roc_auc": roc_auc_score,
        "average_precision": average_precision_score,
        "eer": equal_error_rate,
        "log_loss": lambda y, p: log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]),
        "ece": expected_calibration_error,
    }


def compute_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Each metric as {value, ci_low, ci_high}: a percentile bootstrap over rows (95 %)."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("metrics need both real and fake examples")
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    boots = [b for b in boots if len(np.unique(y[b])) == 2]
    out = {}
    for name, fn in _point_metrics(threshold).items():
        samples = np.array([fn(y[b], p[b]) for b in boots])
        out[name] = {"value": float(fn(y, p)), "ci_low": float(np.percentile(samples, 2.5)),
                     "ci_high": float(np.percentile(samples, 97.5))}
    return out


def pick_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The P(fake) cut that maximises macro-F1 on validation data (never on test data)."""
    candidates = np.unique(np.quantile(p, np.linspace(0.01, 0.99, 197)))
    scores = [f1_score(y, p > t, average="macro") for t in candidates]
    return float(np.clip(candidates[int(np.argmax(scores))], 0.02, 0.98))


def rows_by_group(groups: list[str]) -> dict[str, list[int]]:
    """Row indices of each group (source video), groups in order of first appearance."""
    rows: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    return rows


def paired_auc_difference(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, groups: list[str] | None = None,
                          n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """ROC-AUC of A minus that of B on the same rows, with a 95 % bootstrap CI of the difference.

    Both models are scored on each resample together (paired), which is far tighter than comparing
    their separate CIs. With ``groups`` whole groups (source videos) are resampled: crops of one video
    are not independent evidence."""
    y = np.asarray(y).astype(int)
    p_a, p_b = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    units = ([np.array(rows) for rows in rows_by_group(groups).values()] if groups is not None
             else [np.array([i]) for i in range(len(y))])
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        rows = np.concatenate([units[i] for i in rng.integers(0, len(units), len(units))])
        if len(np.unique(y[rows])) == 2:
            diffs.append(roc_auc_score(y[rows], p_a[rows]) - roc_auc_score(y[rows], p_b[rows]))
    diffs = np.array(diffs)
    auc_a, auc_b = float(roc_auc_score(y, p_a)), float(roc_auc_score(y, p_b))
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": auc_a - auc_b,
            "ci_low": float(np.percentile(diffs, 2.5)), "ci_high": float(np.percentile(diffs, 97.5)),
            "p_not_better": float(np.mean(diffs <= 0)), "n_boot": len(diffs),
            "units": len(units)}
