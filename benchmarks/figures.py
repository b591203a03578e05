"""A row's figures over the rounds: its per-round ratio (or absolute figure) with median and
range, the medians of what each side measured, and whether the target was met."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from suite import SIDES, Row


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "per_round": list(values),
    }


def summarize(row: Row, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's figures over the rounds: per-round ratio, its median and range, and medians
    of what each side measured."""
    out: dict[str, Any] = {
        "row": row.name,
        "title": row.title,
        "description": row.description,
        "baseline": row.baseline,
        "target": {"op": row.op, "value": row.target, "stretch": row.stretch},
    }
    if row.absolute:
        key = "us" if row.metric == "core_us" else "bytes"
        per = [r[row.name] for r in rounds if row.name in r]
        values = [p[f"core_{key}"] for p in per]
        bases = [p[f"base_{key}"] for p in per]
        out["figure_unit"] = key
        out["ours"] = {f"{key}_per_call": spread(values)} if values else {}
        out["base"] = {f"{key}_per_call": spread(bases)} if bases else {}
        ratios = [v / b for v, b in zip(values, bases, strict=True)]
        out["ratio_to_baseline"] = spread(ratios) if ratios else None
        # The core's figure is what it adds over the baseline of the same round (the work of
        # encoding and decoding the values, which no implementation can skip); memory's is
        # the core's own bytes per pending call.
        if row.metric == "core_us":
            figure = [v - b for v, b in zip(values, bases, strict=True)]
        else:
            figure = values
    else:
        assert row.ours is not None and row.base is not None
        pairs = [(r[row.ours], r[row.base]) for r in rounds if row.ours in r and row.base in r]
        out["figure_unit"] = "ratio"
        out["sides"] = {"ours": SIDES[row.ours].label, "base": SIDES[row.base].label}
        for which, index in (("ours", 0), ("base", 1)):
            out[which] = {
                metric: spread([pair[index][metric] for pair in pairs])
                for metric in (
                    "calls_per_s", "p50_us", "p99_us", "client_cpu_us", "server_cpu_us"
                )
            } if pairs else {}  # fmt: skip
        figure = [ours[row.metric] / base[row.metric] for ours, base in pairs]
        out["ratio_to_baseline"] = spread(figure) if figure else None
    out["rounds_ok"] = len(figure)
    out["figure"] = spread(figure) if figure else None
    if figure:
        median = statistics.median(figure)
        out["met"] = row.met(median)
        out["stretch_met"] = row.stretch is not None and row.met(median, row.stretch)
    else:
        out["met"] = None
        out["stretch_met"] = None
    return out
