"""The benchmark's pure parts: percentiles, summaries, the per-hop split, tables."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from bench.loadgen import HOPS, Sample, hops
from bench.report import table
from bench.stats import percentile, summarize
from tests.helpers import make_notice


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))


def test_summary_in_milliseconds() -> None:
    s = summarize([0.003, 0.001, 0.002, 0.010])
    assert (s.n, s.p50_ms, s.max_ms) == (4, 2.0, 10.0)


def test_hops_add_up_to_the_whole_latency() -> None:
    submitted = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    t = submitted.timestamp()
    timings = {
        "started": t + 0.004,
        "appended": t + 0.006,
        "decided": t + 0.007,
        "sent": t + 0.0071,
    }
    notice = make_notice(at=submitted, timings=timings)
    sample = Sample(sent=t - 0.001, done=t + 0.009, publish_ms=2.0, notice=notice)
    split = hops(sample)
    assert split is not None
    assert len(split) == len(HOPS)
    assert split == pytest.approx([0.001, 0.002, 0.002, 0.002, 0.001, 0.0001, 0.0019], abs=1e-6)
    assert sum(split) == pytest.approx(sample.latency)


def test_hops_need_the_reactor_timings() -> None:
    assert hops(Sample(sent=0.0, done=1.0)) is None


def test_table_aligns_columns() -> None:
    text = table(["name", "value"], [["a", "1"], ["long name", "22"]])
    lines = text.splitlines()
    assert lines[0].startswith("name     ")
    assert lines[2].endswith("    1")
    assert len({len(line) for line in lines}) == 1
