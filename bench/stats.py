"""Latency summaries (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec


class Summary(msgspec.Struct, frozen=True):
    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(seconds: Sequence[float]) -> Summary:
    ms = sorted(s * 1000 for s in seconds)
    return Summary(
        n=len(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1] if ms else math.nan,
    )
