"""A few counters and gauges, rendered as Prometheus text at /metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[tuple[str, str]] = Counter()
        self.gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, label: str = "") -> None:
        self.counters[(name, label)] += 1

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted({n for n, _ in self.counters}):
            lines.append(f"# TYPE {name} counter")
            for (n, label), value in sorted(self.counters.items()):
                if n == name:
                    lines.append(f"{name}{{{label}}} {value}" if label else f"{name} {value}")
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"
