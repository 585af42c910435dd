"""Detection metrics with bootstrap confidence intervals (scikit-learn), and threshold / operating-point selection."""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score,
                             roc_curve)

from deepfake_space.config import decision_cuts


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


def _resamples(y: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Bootstrap row indices; resamples holding a single class are dropped (AUC needs both)."""
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    return [b for b in boots if len(np.unique(y[b])) == 2]


def compute_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Each metric as {value, ci_low, ci_high}: a percentile bootstrap over rows (95 %)."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("metrics need both real and fake examples")
    boots = _resamples(y, n_boot, seed)
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


def roc_auc_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """ROC-AUC with a percentile-bootstrap 95 % CI over rows: the same resamples as ``compute_metrics``, without
    the thresholded metrics (for small sets where only the ranking is worth reading)."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("ROC-AUC needs both real and fake examples")
    samples = np.array([roc_auc_score(y[b], p[b]) for b in _resamples(y, n_boot, seed)])
    return {"value": float(roc_auc_score(y, p)), "ci_low": float(np.percentile(samples, 2.5)),
            "ci_high": float(np.percentile(samples, 97.5)), "n": int(len(y)), "n_boot": int(len(samples))}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: sane at 0 or n successes, where the normal one collapses."""
    if n == 0:
        return 0.0, 1.0
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    # The interval always holds the share; at 0 or n successes rounding alone would put a bound a hair past it.
    return float(max(0.0, min(share, centre - half))), float(min(1.0, max(share, centre + half)))


def false_fake_rate(p: np.ndarray, threshold: float, band: float = 0.0) -> float:
    """Share of (real) scores called fake: P(fake) > threshold + band, as ``DetectorConfig.verdict`` rules;
    a score inside the band is "uncertain", not a false accusation."""
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        raise ValueError("false_fake_rate needs at least one score")
    return float(np.mean(p > threshold + band))


def _operating_metrics(y: np.ndarray, p: np.ndarray, threshold: float, band: float,
                       fake_above: float | None = None) -> dict[str, float]:
    """Validation figures of one decision rule: macro-F1 of the bare threshold (what ``pick_threshold``
    maximises), and with the band (stretched up to ``fake_above`` when given) the share of fakes called fake, of
    reals called fake, and of all rows left uncertain."""
    real_cut, fake_cut = decision_cuts(threshold, band, fake_above)
    return {"threshold": float(threshold),
            "fake_above": float(fake_cut),
            "macro_f1": float(f1_score(y, p > threshold, average="macro")),
            "fake_recall": float(np.mean(p[y == 1] > fake_cut)),
            "false_fake_rate": false_fake_rate(p[y == 0], fake_cut),
            "uncertain_rate": float(np.mean((p >= real_cut) & (p <= fake_cut)))}


def _lowest_threshold_meeting_cap(p_photos: np.ndarray, band: float, max_false_fake: float) -> float:
    """The smallest t with ``false_fake_rate(p_photos, t, band) <= max_false_fake``."""
    n = len(p_photos)
    allowed = int(np.floor(max_false_fake * n))  # photos that may still be called fake
    allowed += (allowed + 1) / n <= max_false_fake  # floor(0.29 * 100) is 28
    t = float(np.sort(p_photos)[::-1][allowed] - band)  # that photo sits exactly on the edge: not fake
    while false_fake_rate(p_photos, t, band) > max_false_fake:  # float rounding of (p - band) + band
        t = float(np.nextafter(t, np.inf))
    return t


FAKE_CUT_MAX = 0.999  # a fake cut the cap pushes higher is clipped here, and cap_met says it was missed


def _fake_cut_for_degraded(p_degraded: dict[str, np.ndarray], floor: float,
                           max_false_fake: float) -> tuple[float | None, dict[str, float]]:
    """The lowest fake cut, not under ``floor``, that keeps every degraded set's false-fake rate within the cap
    (None when ``floor`` already does), and the cut each set alone would need."""
    needed = {name: _lowest_threshold_meeting_cap(np.asarray(p, dtype=np.float64), 0.0, max_false_fake)
              for name, p in p_degraded.items()}
    cut = max([floor, *needed.values()])
    return (None if cut <= floor else min(cut, FAKE_CUT_MAX)), needed


def pick_operating_point(y_val: np.ndarray, p_val: np.ndarray, p_real_photos: np.ndarray,
                         max_false_fake: float = 0.02, band: float = 0.1,
                         p_degraded_photos: dict[str, np.ndarray] | None = None) -> dict:
    """Threshold, uncertain band and fake cut from validation data, capped so few real photos are called fake.

    The threshold is ``pick_threshold``'s (validation macro-F1). If more than ``max_false_fake`` of
    ``p_real_photos`` (scored real photos; a photo with no face gets no verdict, so it is left out) would be
    called fake (P > threshold + band), the band is kept and the threshold moves up to the smallest value that
    meets the cap (never above ``1 - band``, where nothing can be called fake), clipped at 0.98 as
    ``pick_threshold``: with a band under 0.02 the cap may then be missed, and ``cap_met`` says so.
    Moving only as far as needed keeps as much fake recall as the cap allows; searching higher cuts for a better
    validation F1 would fit validation noise.

    ``p_degraded_photos`` (the same photos after each upload degradation, ``train.photo_robustness``) holds the
    cap under every one of them: where a degradation pushes more real faces over threshold + band, only the fake
    cut (``fake_above``) rises, and the stretch up to it becomes "uncertain"; the threshold and the real cut
    stay. The validation figures are reported at the chosen rule and at the unconstrained threshold;
    ``dfdc_cost`` is what the caps lose in validation macro-F1 and fake recall."""
    y_val, p_val = np.asarray(y_val).astype(int), np.asarray(p_val, dtype=np.float64)
    p_photos = np.asarray(p_real_photos, dtype=np.float64)
    if not 0.0 <= band < 0.5:
        raise ValueError(f"band must lie in [0, 0.5), got {band}")
    if not 0.0 <= max_false_fake <= 1.0:
        raise ValueError(f"max_false_fake must lie in [0, 1], got {max_false_fake}")
    free = pick_threshold(y_val, p_val)
    threshold = free
    if false_fake_rate(p_photos, free, band) > max_false_fake:
        threshold = min(max(free, _lowest_threshold_meeting_cap(p_photos, band, max_false_fake)), 0.98)
    fake_above, needed = _fake_cut_for_degraded(p_degraded_photos or {}, threshold + band, max_false_fake)
    fake_cut = decision_cuts(threshold, band, fake_above)[1]
    degraded = {name: {"fake_cut_needed": needed[name],
                       "false_fake_rate": false_fake_rate(np.asarray(p, dtype=np.float64), fake_cut)}
                for name, p in (p_degraded_photos or {}).items()}
    chosen = _operating_metrics(y_val, p_val, threshold, band, fake_above)
    unconstrained = _operating_metrics(y_val, p_val, free, band)
    photo_rate = false_fake_rate(p_photos, fake_cut)
    return {
        "threshold": float(threshold), "uncertain_band": float(band), "fake_above": fake_above,
        "max_false_fake": float(max_false_fake), "moved_by_cap": bool(threshold != free),
        "cap_met": bool(photo_rate <= max_false_fake
                        and all(d["false_fake_rate"] <= max_false_fake for d in degraded.values())),
        "validation": chosen, "photo_false_fake_rate": photo_rate, "degraded_photos": degraded,
        "unconstrained": {**unconstrained, "photo_false_fake_rate": false_fake_rate(p_photos, free, band)},
        "dfdc_cost": {k: unconstrained[k] - chosen[k] for k in ("macro_f1", "fake_recall")},
        "dfdc_cost_of_fake_cut": {"fake_recall": _operating_metrics(y_val, p_val, threshold, band)["fake_recall"]
                                  - chosen["fake_recall"]},
        "n_validation": int(len(y_val)), "n_photos": int(len(p_photos)),
    }


def logit_mean(ps: list[np.ndarray]) -> np.ndarray:
    """P(fake) of the equal-weight average of the models' logits, from their P(fake) alone: what
    ``train.ensemble``'s two-class ``logit_average`` would give, since softmax P(fake) is sigmoid(z_fake - z_real)."""
    clipped = [np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7) for p in ps]
    z = np.mean([np.log(p) - np.log1p(-p) for p in clipped], axis=0)
    return 1.0 / (1.0 + np.exp(-z))


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
