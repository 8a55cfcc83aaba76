"""The benchmark's outputs: a table on stdout, a JSON file, a latency CDF plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.stats import Summary


def row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [row(header, widths), row(["-" * w for w in widths], widths)]
    return "\n".join(lines + [row(r, widths) for r in rows])


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def latency_cells(s: Summary) -> list[str]:
    return [ms(s.p50_ms), ms(s.p90_ms), ms(s.p99_ms), ms(s.max_ms)]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def plot_cdf(path: Path, series: dict[str, list[float]]) -> None:
    """One CDF line per scenario, latency in ms on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for label, seconds in series.items():
        if not seconds:
            continue
        values = sorted(v * 1000 for v in seconds)
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(values, fractions, where="post", label=f"{label} (n={len(values)})")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_ylim(0, 1.001)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Latency CDF per scenario (one run)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
