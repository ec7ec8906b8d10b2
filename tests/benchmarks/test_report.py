"""The table, the docs page and the charts, written from a few synthetic rows (the real
runs take minutes and are not part of the suite: ``make bench``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import _report
import run
from _common import Row, row, table

PNG = b"\x89PNG\r\n\x1a\n"


def _rows() -> list[Row]:
    return [
        row("wakeup", "long-poll p50", 1.5, "ms", chart="wakeup", label="long-poll", series="p50"),
        row("wakeup", "long-poll p99", 9.0, "ms", chart="wakeup", label="long-poll", series="p99"),
        row(
            "wakeup",
            "polling every 2 s p50",
            1_000.0,
            "ms",
            anchor="long-poll p50",
            ratio=666.0,
            chart="wakeup",
            label="polling 2 s",
            series="p50",
        ),
        # a benchmark that names no chart, as a new adapter benchmark might be
        row("adapters", "LangChain: overhead per gated call", 0.8, "ms", anchor="bare tool"),
        row("adapters", "CrewAI: overhead per gated call | p50", 1.25, "ms"),
        row("adapters", "LangGraph: overhead per gated call", None, "ms", note="skipped (no X)"),
        row("adapters", "calls checked", 200.0, "calls"),
    ]


ABOUT = {
    "wakeup": "Wake-up, pushed and polled.\n\nHow it is measured: **carefully**.\n",
    "adapters": "Adapter overhead.\n\n- one\n- two\n",
}


def test_charts_group_named_rows_and_give_the_others_one_per_unit() -> None:
    named, by_bench = _report.charts(_rows())
    assert [c.name for c in named] == ["wakeup"]
    wakeup = named[0]
    assert wakeup.labels == ["long-poll", "polling 2 s"]
    assert wakeup.series == ["p50", "p99"]
    assert wakeup.log  # 1.5 ms to 1,000 ms
    assert wakeup.title == _report.TITLES["wakeup"]
    assert "wakeup" not in by_bench
    (adapters,) = by_bench["adapters"]  # ms only: "calls" has a single figure, no chart
    assert [r["figure"] for r in adapters.rows] == [
        "LangChain: overhead per gated call",
        "CrewAI: overhead per gated call | p50",
    ]
    assert not adapters.log and adapters.units == ["ms"]


def test_the_page_and_its_charts(tmp_path: Path) -> None:
    page, images = tmp_path / "docs" / "benchmarks.md", tmp_path / "docs" / "img"
    images.mkdir(parents=True)
    (images / "bench-gone.png").write_bytes(PNG)  # from an earlier run: removed
    (images / "logo.png").write_bytes(PNG)  # not the benchmarks': kept
    meta = {"at": "2030-01-01T00:00:00+00:00", "quick": False, "cpus": 2, "load": "0.5 0.4 0.3"}
    meta["seconds"] = {"total": 12.0, "wakeup": 5.0, "adapters": 7.0}

    written = _report.write(_rows(), meta, ABOUT, page, images)

    assert written[0] == page
    assert {p.name for p in written[1:]} == {"bench-wakeup.png", "bench-adapters-ms.png"}
    for png in written[1:]:
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000
    assert not (images / "bench-gone.png").exists()
    assert (images / "logo.png").exists()

    text = page.read_text()
    assert "A full run on 2030-01-01" in text and "12 s in all (wakeup 5 s, adapters 7 s)" in text
    assert "load average 0.5 0.4 0.3" in text
    assert "## wakeup: Wake-up, pushed and polled" in text
    assert "How it is measured: **carefully**." in text
    assert "## adapters: Adapter overhead\n\n- one\n- two" in text
    # every image the page shows exists beside it
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == ["img/bench-adapters-ms.png", "img/bench-wakeup.png"]
    for link in links:
        assert (page.parent / link).is_file()
    # the named chart sits at the top, the adapters' chart in their section
    assert text.index("img/bench-wakeup.png") < text.index("## wakeup")
    assert text.index("## adapters") < text.index("img/bench-adapters-ms.png")
    # every row is in a table, with its value, anchor and ratio; pipes escaped
    assert "| polling every 2 s p50 | 1,000 ms | long-poll p50 | 666.00x |" in text
    assert "| long-poll p50 | 1.50 ms |  |  |" in text
    assert "| CrewAI: overhead per gated call \\| p50 | 1.25 ms |  |  |" in text
    assert "| LangGraph: overhead per gated call | skipped (no X) |  |  |" in text
    assert "| calls checked | 200 calls |  |  |" in text


def test_the_printed_table_has_every_row() -> None:
    printed = table(_rows()).splitlines()
    assert printed[0].split() == ["figure", "value", "anchor", "ratio"]
    assert set(printed[1]) == {"-", " "}
    assert len(printed) == 2 + len(_rows())
    assert any("666.00x" in line and "1,000 ms" in line for line in printed)
    assert any("skipped (no X)" in line for line in printed)


def test_rows_without_chart_fields_are_plain() -> None:
    plain = row("b", "f", 1.0, "ms")
    assert set(plain) == {"bench", "figure", "value", "unit", "anchor", "ratio", "note"}
    assert row("b", "f", 1.0, "ms", chart="c")["label"] == "f"


@pytest.mark.parametrize("name", list(run.BENCHMARKS))
def test_every_registered_benchmark_runs_async_and_describes_itself(name: str) -> None:
    bench = run.BENCHMARKS[name]
    assert inspect.iscoroutinefunction(bench)
    assert list(inspect.signature(bench).parameters) == ["quick"]
    assert run.about([name])[name].strip(), f"{name}: its module needs a docstring for the page"
