"""Collapsed stacks -> a flame graph SVG, and the collapsed stacks of `perf script`.

One renderer for every process `bench.profile` samples: py-spy's `raw`
output (already collapsed) and nats-server's `perf script` output (collapsed
here). py-spy draws its own flame graphs, but only of one recording in one
format: drawing here lets it sample each process once, and draws nats-server,
which py-spy cannot sample, the same way. No maintained Python package renders
collapsed stacks (Brendan Gregg's flamegraph.pl is Perl, inferno is Rust), and
the SVG is a few rectangles with a tooltip each.

A collapsed stack is `root;caller;...;leaf count` per line.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape

Stacks = Counter[tuple[str, ...]]

WIDTH = 1200
ROW = 16
FONT = 12
CHAR = 7.0  # px a character at FONT (monospace)
MIN_PX = 0.3  # frames narrower than this are left out


def parse_collapsed(lines: Iterable[str]) -> Stacks:
    """`a;b;c 12` lines; others (py-spy writes ` 12` for samples without a stack) are left out."""
    stacks: Stacks = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


_OFFSET = re.compile(r"\+0x[0-9a-f]+$")
_GO_MODULE = "github.com/nats-io/nats-server/v2/"  # nats-server's frames: `server.(*stream)...`


def parse_perf_script(text: str) -> Stacks:
    """`perf script -F ip,sym` (a sample's frames leaf first, samples split by blank lines)."""
    stacks: Stacks = Counter()
    for block in text.split("\n\n"):
        frames = []
        for line in block.splitlines():
            _, _, symbol = line.strip().partition(" ")
            if symbol:
                frames.append(_OFFSET.sub("", symbol).replace(_GO_MODULE, ""))
        if frames:
            stacks[tuple(reversed(frames))] += 1
    return stacks


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Stacks) -> _Node:
    root = _Node("all")
    for stack, n in stacks.items():
        node = root
        node.count += n
        for frame in stack:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += n
    return root


def _color(name: str) -> str:
    h = hashlib.blake2s(name.encode(), digest_size=2).digest()
    return f"rgb(230,{100 + h[0] % 110},{30 + h[1] % 60})"


def svg(stacks: Stacks, title: str) -> str:
    """A flame graph: the root at the bottom, a frame's width its share of the samples."""
    root = _tree(stacks)
    boxes: list[tuple[float, float, int, _Node]] = []  # x, width, level, frame
    scale = WIDTH / root.count if root.count else 0.0

    todo = [(root, 0.0, 0)] if root.count else []  # no recursion: stacks can be deep
    while todo:
        node, x, level = todo.pop()
        width = node.count * scale
        if width < MIN_PX:
            continue
        boxes.append((x, width, level, node))
        for child in sorted(node.children.values(), key=lambda c: c.name):
            todo.append((child, x, level + 1))
            x += child.count * scale
    levels = 1 + max((level for _, _, level, _ in boxes), default=0)
    height = 2 * ROW + levels * ROW + 4  # the title's room above
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="{FONT}">',
        '<rect width="100%" height="100%" fill="#fafafa"/>',
        f'<text x="{WIDTH / 2}" y="{ROW + 2}" text-anchor="middle" font-size="{FONT + 3}">'
        f"{escape(title)}</text>",
    ]
    for x, width, level, node in boxes:
        y = height - (level + 1) * ROW - 2
        share = 100 * node.count / root.count
        label = escape(f"{node.name} ({node.count} samples, {share:.2f} %)")
        shown = node.name[: int((width - 6) // CHAR)] if width > 3 * CHAR else ""
        text = f'<text x="{x + 3:.1f}" y="{y + ROW - 4}">{escape(shown)}</text>' if shown else ""
        parts.append(
            f'<g><title>{label}</title><rect x="{x:.1f}" y="{y}" width="{width:.1f}" '
            f'height="{ROW - 1}" fill="{_color(node.name)}" rx="2"/>{text}</g>'
        )
    parts.append("</svg>\n")
    return "\n".join(parts)
