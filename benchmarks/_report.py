"""``docs/benchmarks.md`` and its PNG charts, from the rows of one run.

Any benchmark's rows find a place without changes here: the page has a section per
benchmark (its module docstring, then its rows as a table), and charts come from the rows
themselves. Rows that name a ``chart`` are drawn together, one bar per ``label`` and
``series`` (these are the pictures at the top of the page); a benchmark whose rows name no
chart gets one per unit, one bar per figure, in its own section.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Row, format_ratio, format_value

# Titles of the charts rows may name; any other name is its own title.
TITLES = {
    "wakeup": "Decision → waiting agent: pushed (in-process, long-poll, SSE) against polling",
    "http-create": "POST /v1/tasks over HTTP against the no-op FastAPI ceiling",
    "http-lifecycle": "Task lifecycle over HTTP (create → long-poll → decision → answered)",
    "lifecycle": "Lifecycle create → verified, in-process",
    "storage-create": "In-process review create by store, µs (lower is better)",
    "ledger": "Ledger operations",
    "routing": "Assignment latency, 10,000 workers",
}
LOG_SPAN = 30.0  # a chart whose bars span more than this factor gets a log scale


@dataclass
class Chart:
    """One picture: bars by label (top to bottom) and series (colours)."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(_label(r) for r in self.rows))

    @property
    def series(self) -> list[str]:
        return list(dict.fromkeys(r.get("series", "") for r in self.rows))

    @property
    def units(self) -> list[str]:
        return list(dict.fromkeys(r["unit"] for r in self.rows))

    @property
    def log(self) -> bool:
        values = [r["value"] for r in self.rows if r["value"] and r["value"] > 0]
        return len(values) > 1 and max(values) / min(values) > LOG_SPAN

    @property
    def file(self) -> str:
        return f"bench-{_slug(self.name)}.png"


def _label(r: Row) -> str:
    return r.get("label") or r["figure"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def charts(rows: Sequence[Row]) -> tuple[list[Chart], dict[str, list[Chart]]]:
    """The named charts (in order of first appearance), and the charts of each benchmark
    whose rows name none (one per unit with at least two figures)."""
    named: dict[str, Chart] = {}
    for r in rows:
        if r.get("chart") and r["value"] is not None:
            name = r["chart"]
            named.setdefault(name, Chart(name, TITLES.get(name, name))).rows.append(r)
    charted = {r["bench"] for r in rows if r.get("chart")}
    by_bench: dict[str, list[Chart]] = {}
    for bench in dict.fromkeys(r["bench"] for r in rows):
        if bench in charted:
            continue
        units: dict[str, Chart] = {}
        for r in rows:
            if r["bench"] == bench and r["value"] is not None:
                name = f"{bench}-{r['unit']}"
                units.setdefault(name, Chart(name, f"{bench} ({r['unit']})")).rows.append(r)
        by_bench[bench] = [c for c in units.values() if len(c.rows) >= 2]
    return list(named.values()), by_bench


def draw(chart: Chart, path: Path) -> None:
    """A horizontal grouped bar chart of ``chart`` as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, series = chart.labels, chart.series
    values = {(_label(r), r.get("series", "")): r for r in chart.rows}
    slot = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9.5, 0.9 + len(labels) * (0.25 + 0.22 * len(series))))
    try:
        for j, name in enumerate(series):
            ys, xs, texts = [], [], []
            for i, label in enumerate(labels):
                r = values.get((label, name))
                if r is None or r["value"] is None:
                    continue
                ys.append(i + (j - (len(series) - 1) / 2) * slot)
                xs.append(r["value"])
                texts.append(format_value(r))
            bars = ax.barh(ys, xs, height=slot * 0.9, label=name or None)
            ax.bar_label(bars, labels=texts, padding=3, fontsize=7)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels([textwrap.fill(label, 44) for label in labels], fontsize=8)
        ax.invert_yaxis()
        if chart.log:
            ax.set_xscale("log")
        low, high = ax.get_xlim()
        ax.set_xlim(low, high * (4 if chart.log else 1.25))  # room for the value labels
        scale = " (log scale)" if chart.log else ""
        ax.set_xlabel(" / ".join(chart.units) + scale, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(chart.title, fontsize=10)
        ax.grid(axis="x", alpha=0.3, which="both" if chart.log else "major")
        if any(series):
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| figure | value | anchor | ratio |", "|---|--:|---|--:|"]
    lines += [
        f"| {_cell(r['figure'])} | {_cell(format_value(r))} | {_cell(r['anchor'])} "
        f"| {format_ratio(r)} |"
        for r in rows
    ]
    return "\n".join(lines)


def page(
    rows: Sequence[Row],
    meta: Mapping[str, Any],
    about: Mapping[str, str],
    named: Sequence[Chart],
    by_bench: Mapping[str, Sequence[Chart]],
    images: str,
) -> str:
    """The Markdown page: how it was run, the pictures, then each benchmark's section."""
    seconds = meta.get("seconds", {})
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run.py`); do not edit by hand. "
        f"{'A `--quick` run' if meta.get('quick') else 'A full run'} on {meta.get('at', '?')}, "
        f"{meta.get('machine', '?')}, {meta.get('cpus', '?')} CPUs, Python "
        f"{meta.get('python', '?')}: {seconds.get('total', 0):.0f} s in all ({timings}).",
        "",
        "Every ratio divides two figures measured in the same run (or a published figure, "
        "named as such), so a busy machine shifts both sides; the absolute figures are only "
        "as good as the machine was quiet"
        + (f" (load average {meta['load']} when the run began)." if meta.get("load") else "."),
        "Run it yourself with `make bench` (or `uv run --frozen --no-sync python "
        "benchmarks/run.py [--quick] [--only NAME]`).",
        "",
    ]
    if named:
        out += ["## At a glance", ""]
        out += [f"![{c.title}]({images}/{c.file})\n" for c in named]
    for bench in dict.fromkeys(r["bench"] for r in rows):
        text = about.get(bench, "").strip()
        head, _, body = text.partition("\n\n")
        head = " ".join(head.split()).rstrip(".")
        out += [f"## {bench}" + (f": {head}" if head else ""), ""]
        if body.strip():
            out += [textwrap.dedent(body).strip(), ""]
        out += [f"![{c.title}]({images}/{c.file})\n" for c in by_bench.get(bench, ())]
        out += [markdown_table([r for r in rows if r["bench"] == bench]), ""]
    return "\n".join(out).rstrip() + "\n"


def write(
    rows: Sequence[Row],
    meta: Mapping[str, Any],
    about: Mapping[str, str],
    page_path: Path,
    image_dir: Path,
) -> list[Path]:
    """Write the page and its charts (old ``bench-*.png`` in ``image_dir`` are removed);
    the paths written."""
    named, by_bench = charts(rows)
    image_dir.mkdir(parents=True, exist_ok=True)
    for old in image_dir.glob("bench-*.png"):
        old.unlink()
    written = []
    for chart in [*named, *(c for cs in by_bench.values() for c in cs)]:
        draw(chart, image_dir / chart.file)
        written.append(image_dir / chart.file)
    images = Path(os.path.relpath(image_dir.resolve(), page_path.parent.resolve())).as_posix()
    page_path.parent.mkdir(parents=True, exist_ok=True)
    page_path.write_text(page(rows, meta, about, named, by_bench, images))
    return [page_path, *written]
