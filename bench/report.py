"""Turning measurements into records (one JSON line per run), tables and medians over runs."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from typing import Any

Record = dict[str, Any]

_MEDIAN_FIELDS = (
    "ops_per_s",
    "ratio_to_echo",
    "server_cpu_to_echo",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "server_cpu_us_per_op",
    "database_cpu_us_per_op",
    "client_cpu_us_per_op",
    "echo_ops_per_s",
    "echo_server_cpu_us_per_call",
    "server_rss_mb",
    "calls_per_op",
    "rss_filled_mb",
    "fill_seconds",
)
_VARIANT_FIELDS = ("scale", "watchers")  # runs differing in these are kept apart
_COLUMNS = (
    ("backend", "backend", "{}"),
    ("workload", "label", "{}"),
    ("ops/s", "ops_per_s", "{:.0f}"),
    ("x echo", "ratio_to_echo", "{:.3f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p90 ms", "p90_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("max ms", "max_ms", "{:.1f}"),
    ("errors", "errors", "{}"),
    ("srv us/op", "server_cpu_us_per_op", "{:.0f}"),
    ("cli us/op", "client_cpu_us_per_op", "{:.0f}"),
    ("check", "check", "{}"),
)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def latency_fields(latencies_ms: list[float]) -> Record:
    return {
        "p50_ms": round(percentile(latencies_ms, 0.50), 3),
        "p90_ms": round(percentile(latencies_ms, 0.90), 3),
        "p99_ms": round(percentile(latencies_ms, 0.99), 3),
        "max_ms": round(max(latencies_ms, default=0.0), 3),
    }


def per_op_us(seconds: float, ops: int) -> float:
    return round(seconds / ops * 1e6, 1) if ops else 0.0


def json_line(record: Record) -> str:
    return json.dumps(record, sort_keys=False)


def label(record: Record) -> str:
    """The workload's name, with its size (`--scale`) and watcher count where it has them."""
    text = str(record["workload"])
    if record.get("scale") is not None:
        text += f" @{record['scale']}"
    if record.get("watchers") is not None:
        text += f" ({record['watchers']:,} watchers)"
    return text


def medians(records: Iterable[Record]) -> list[Record]:
    """One record per backend, workload and variant (size, watchers): the median of each figure
    over the runs; errors are summed and the check passes only if every run's did."""
    groups: dict[tuple[object, ...], list[Record]] = {}
    for record in records:
        key = (record["backend"], record["workload"], *(record.get(name) for name in _VARIANT_FIELDS))
        groups.setdefault(key, []).append(record)
    summary = []
    for key, runs in groups.items():
        median: Record = {"run": "median", "runs": len(runs), "backend": key[0], "workload": key[1]}
        median.update({name: runs[0][name] for name in _VARIANT_FIELDS if runs[0].get(name) is not None})
        median["unit"] = runs[0]["unit"]
        for name in _MEDIAN_FIELDS:
            values = [run[name] for run in runs if isinstance(run.get(name), int | float)]
            if values:
                median[name] = round(statistics.median(values), 3)
        median["errors"] = sum(run["errors"] for run in runs)
        checks = {run.get("check", "-") for run in runs}
        median["check"] = checks.pop() if len(checks) == 1 else "; ".join(sorted(checks))
        summary.append(median)
    return summary


def table(records: list[Record]) -> str:
    """A fixed-width text table of the main figures."""
    rows = [[title for title, _, _ in _COLUMNS]]
    for record in records:
        row = []
        for _, name, form in _COLUMNS:
            value = label(record) if name == "label" else record.get(name, "-")
            row.append(form.format(value) if value != "-" else "-")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(records: list[Record]) -> str:
    """The medians as a Markdown table, for docs/performance.md."""
    header = (
        "| backend | workload | unit | x echo | ops/s | p50 ms | p99 ms | server CPU us/op | errors | check |"
    )
    lines = [header, "|" + "---|" * 10]
    for record in records:
        lines.append(
            f"| {record['backend']} | {label(record)} | {record['unit']} | "
            f"{record.get('ratio_to_echo', 0):.3f} | {record.get('ops_per_s', 0):.0f} | "
            f"{record.get('p50_ms', 0):.2f} | {record.get('p99_ms', 0):.2f} | "
            f"{record.get('server_cpu_us_per_op', 0):.0f} | {record['errors']} | {record.get('check', '-')} |"
        )
    return "\n".join(lines)
