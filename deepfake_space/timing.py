"""Median wall time of a repeated call: the one timing rule the bench and the evaluation share."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], runs: int, warmup: int = 0) -> float:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times; the median of the timed calls."""
    if runs < 1:
        raise ValueError(f"timing needs at least one run, got {runs}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
