"""The benchmark results for people: the figures as text, the table printed at the end of a run,
and the chart of each row's figure against its target (results.png)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite import ROWS_BY_NAME, Row


def fmt_us(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}ms"
    if value >= 1_000:
        return f"{value / 1000:.1f}ms"
    return f"{value:.0f}us"


def fmt_figure(summary: dict[str, Any], value: float) -> str:
    unit = summary["figure_unit"]
    if unit == "ratio":
        target = summary["target"]["value"]
        # Enough digits that a ratio just short of its target does not print as the target.
        return f"{value:.3f}x" if round(value, 2) == target != value else f"{value:.2f}x"
    if unit == "us":
        return f"{value:.1f}us"
    return f"{value:.0f}B"


def fmt_target(row: Row) -> str:
    unit = {"core_us": " us", "bytes": " B"}.get(row.metric, "x")
    limit = f"{row.target:g}" if row.metric != "bytes" else f"{row.target:.0f}"
    text = f"{row.op} {limit}{unit}"
    if row.stretch is not None:
        text += f" ({row.stretch:g}x)"
    return text


def table(summaries: list[dict[str, Any]]) -> str:
    header = [
        "row", "baseline", "calls/s", "p50", "p99", "CPU us/call client",
        "CPU us/call server", "median (range)", "target", "met?",
    ]  # fmt: skip
    lines = [header]
    for s in summaries:
        row = ROWS_BY_NAME[s["row"]]
        ours, base = s["ours"], s["base"]
        if not ours:
            cells = [row.title, row.baseline, "-", "-", "-", "-", "-", "FAILED", fmt_target(row)]
            lines.append([*cells, "error"])
            continue

        def pair(
            metric: str, fmt: Callable[[float], str], ours: Any = ours, base: Any = base
        ) -> str:
            return f"{fmt(ours[metric]['median'])}/{fmt(base[metric]['median'])}"

        if row.absolute:
            key = f"{s['figure_unit']}_per_call"
            base_text = f"{row.baseline} ({fmt_figure(s, base[key]['median'])})"
            cpu = pair(key, lambda v: f"{v:.1f}") if row.metric == "core_us" else "-"
            cells = [row.title, base_text, "-", "-", "-", cpu, "(both)" if cpu != "-" else "-"]
        else:
            cells = [
                row.title,
                row.baseline,
                pair("calls_per_s", lambda v: f"{v:.0f}"),
                pair("p50_us", fmt_us),
                pair("p99_us", fmt_us),
                pair("client_cpu_us", lambda v: f"{v:.0f}"),
                pair("server_cpu_us", lambda v: f"{v:.0f}"),
            ]
        fig = s["figure"]
        digits = 0 if s["figure_unit"] == "bytes" else 1 if s["figure_unit"] == "us" else 2
        figure = f"{fmt_figure(s, fig['median'])} ({fig['min']:.{digits}f}-{fig['max']:.{digits}f})"
        if s.get("rounds_missing"):
            figure += f" [{s['rounds_ok']} rounds]"
        met = "MET" if s["met"] else "not met"
        if s["stretch_met"]:
            met += " +stretch"
        lines.append([*cells, figure, fmt_target(row), met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = []
    for n, line in enumerate(lines):
        rendered.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            rendered.append("  ".join("-" * w for w in widths))
    return "\n".join(text.rstrip() for text in rendered)


def chart(summaries: list[dict[str, Any]], path: Path, subtitle: str) -> None:
    """A panel per row: the median figure as a bar, its range as a whisker, each round as a
    dot, the target as a dashed line (dotted: the stretch target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in summaries if s["figure"]]
    cols = min(3, max(1, len(shown)))
    rows_n = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 3.6 * rows_n), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, s in zip(axes.flat, shown, strict=False):
        row = ROWS_BY_NAME[s["row"]]
        f = s["figure"]
        color = "#2e7d32" if s["met"] else "#c62828"
        median = f["median"]
        ax.bar([0], [median], width=0.5, color=color, alpha=0.8, label="amqprpc")
        if row.absolute:  # the baseline's own figure, beside ours
            base = s["base"][f"{s['figure_unit']}_per_call"]["median"]
            ax.bar([0.45], [base], width=0.25, color="grey", alpha=0.6, label=row.baseline)
        ax.errorbar(
            [0], [median], yerr=[[median - f["min"]], [f["max"] - median]],
            fmt="none", ecolor="black", capsize=8, linewidth=1.2,
        )  # fmt: skip
        ax.scatter([0.0] * len(f["per_round"]), f["per_round"], color="black", s=10, zorder=3)
        ax.axhline(row.target, color="#1565c0", linestyle="--", linewidth=1.5, label="target")
        if row.stretch is not None:
            ax.axhline(row.stretch, color="#1565c0", linestyle=":", linewidth=1.5, label="stretch")
        if not row.absolute:
            ax.axhline(1.0, color="grey", linewidth=0.8)
        top = max(f["max"], row.target, row.stretch or 0.0) * 1.3
        ax.set_ylim(0, top)
        ax.set_xlim(-0.75, 0.9)
        ax.set_xticks([])
        ax.text(-0.27, median, fmt_figure(s, median), ha="right", va="center", fontsize=10)
        unit = {"ratio": "ratio to baseline", "us": "CPU us per call", "bytes": "bytes"}
        ax.set_ylabel(unit[s["figure_unit"]])
        verdict = "met" if s["met"] else "NOT met"
        ax.set_title(f"{row.title}\nvs {row.baseline}: {fmt_target(row)} {verdict}", fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"amqprpc benchmarks: median of rounds, whiskers = range\n{subtitle}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
