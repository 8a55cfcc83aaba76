"""The benchmark's pure parts: percentiles, summaries, the per-hop split, tables."""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime

import pytest

from bench.census import kind
from bench.flamegraph import WIDTH, parse_collapsed, parse_perf_script, svg
from bench.loadgen import HOPS, Sample, hops
from bench.profile import KINDS, OTHER_KIND, by_function, kinds, top
from bench.report import table
from bench.stack import busy_cores, jiffies, machine_jiffies
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


PERF_SCRIPT = """
\tffffffff81711bbb do_fsync+0x1b
\t          4d4f11 github.com/nats-io/nats-server/v2/server.(*msgBlock).flushPendingMsgsLocked
\t           92c41 runtime.goexit.abi0

\t          4d4f11 github.com/nats-io/nats-server/v2/server.(*client).readLoop+0x20
\t           92c41 runtime.goexit.abi0

\t           10f4e runtime.usleep.abi0
\t           92c41 runtime.sysmon
"""


def test_perf_script_stacks_are_collapsed_root_first() -> None:
    stacks = parse_perf_script(PERF_SCRIPT)
    assert stacks == {
        ("runtime.goexit.abi0", "server.(*msgBlock).flushPendingMsgsLocked", "do_fsync"): 1,
        ("runtime.goexit.abi0", "server.(*client).readLoop"): 1,
        ("runtime.sysmon", "runtime.usleep.abi0"): 1,
    }


def test_nats_server_samples_by_kind() -> None:
    lines = kinds(parse_perf_script(PERF_SCRIPT)).splitlines()
    shares = {line.split("%", 1)[1].strip(): line.split("%")[0].strip() for line in lines}
    fsync, sockets, code = (name for name, _ in KINDS)
    assert shares == {fsync: "33.3", sockets: "0.0", code: "33.3", OTHER_KIND: "33.3"}


def test_py_spy_frames_merge_per_function() -> None:
    stacks = by_function(
        parse_collapsed(
            [
                "run (/usr/lib/asyncio/runners.py:118);_handle (reactor/handling.py:170) 3",
                "run (/usr/lib/asyncio/runners.py:118);_handle (reactor/handling.py:190) 2",
                "not a sample line",
            ]
        )
    )
    assert stacks == {("run (asyncio/runners.py)", "_handle (reactor/handling.py)"): 5}
    assert "100.0 %  _handle (reactor/handling.py)" in top(stacks, 3)


def test_a_flame_graph_frame_is_as_wide_as_its_share_of_the_samples() -> None:
    stacks = parse_collapsed(["main;a<b> 3", "main;c 1", "main;c;tiny 0"])
    graph = svg(stacks, "t & t")
    widths = {
        title.split(" (")[0]: float(width)
        for title, width in re.findall(r"<title>(.*?)</title><rect [^>]*width=\"([\d.]+)\"", graph)
    }
    assert widths == {"all": WIDTH, "main": WIDTH, "a&lt;b&gt;": WIDTH * 3 / 4, "c": WIDTH / 4}
    assert "t &amp; t" in graph


def test_the_census_counts_subjects_without_their_ids() -> None:
    assert kind("$KV.view_locations.abc123") == "$KV.view_locations.*"
    assert kind("ev.location.0123456789abcdef01234567") == "ev.location.*"
    assert kind("notice.3f2a.9b1c") == "notice.*.*"
    assert kind("_INBOX.x1y2.7") == kind("_INBOX.other.8")
    assert kind("$JS.API.STREAM.INFO.EVENTS") == "$JS.API.STREAM.INFO.EVENTS"
    assert kind("$JS.EVENT.ADVISORY.CONSUMER.CREATED.COMMANDS.Do3O7mIv") == (
        "$JS.EVENT.ADVISORY.CONSUMER.CREATED.COMMANDS.*"
    )


def test_busy_cores_is_the_machines_busy_share_of_the_time_between_two_readings() -> None:
    cores = os.cpu_count() or 1
    assert busy_cores((100, 1000), (400, 2000)) == pytest.approx(0.3 * cores)
    assert busy_cores((5, 10), (5, 10)) == 0.0  # no time passed: nothing to divide by
    first = machine_jiffies()
    busy, every = machine_jiffies()
    assert 0 <= busy - first[0] <= every - first[1]


def test_jiffies_count_all_but_idle_and_io_wait_as_busy() -> None:
    #            user nice system idle iowait irq softirq steal guest guest_nice
    line = "cpu  100 5 50 800 20 1 10 2 7 0"
    assert jiffies(line) == (100 + 5 + 50 + 1 + 10 + 2, 988)
