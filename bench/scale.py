"""`--scale`: the same workloads at several store sizes, side by side (issue 15: the cost of a
call must stay flat from 1,000 to 1,000,000 live leases and keys).

For each size N (or N:L), one server is started on a store filled with N leases (or L: a million
take long to write on a loaded machine; `bench.fill`) and N keys (`get` and `put` address all N
of them), its RSS is read, and
then each workload runs on it in turn, each right after an echo run of its own (the ratio
compares two measurements of the same minute). The server's RSS is read again after each
workload. A fill of a million takes minutes, so the size's server is kept for all its workloads
and rounds rather than filled anew for each.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from bench.harness import Backend
from bench.matrix import Settings, filled_servers, measure_echo, measure_on, with_echo_ratio
from bench.report import Record
from bench.workloads import WORKLOADS

__all__ = ["Scale", "run_scale", "side_by_side"]


@dataclasses.dataclass(frozen=True)
class Scale:
    """One size of `--scale`: keys and leases stored before the workloads run."""

    keys: int
    leases: int

    @property
    def name(self) -> str:
        """How `--scale` spells it, and how records name it: "N", or "N:L" when they differ."""
        return str(self.keys) if self.keys == self.leases else f"{self.keys}:{self.leases}"


def run_scale(
    backend: Backend,
    scales: list[Scale],
    names: list[str],
    settings: Settings,
    repeat: int,
    emit: Callable[[Record], None],
) -> list[Record]:
    """Runs `names` `repeat` times at each size in `scales`; returns every record (echo runs
    included), each with its `scale`, the fill's duration and the RSS after the fill."""
    records: list[Record] = []
    for scale in scales:
        size = scale.name
        sizes = dataclasses.replace(
            settings.sizes, stored_keys=scale.keys, stored_leases=scale.leases, keys=scale.keys
        )
        sized = dataclasses.replace(settings, sizes=sizes)
        started = time.monotonic()
        with filled_servers(backend, sizes) as servers:
            filled = {"scale": size, "fill_seconds": round(time.monotonic() - started, 1)}
            filled["rss_filled_mb"] = round(servers.memory_mb()[0], 1)
            for run in range(1, repeat + 1):
                for name in names:
                    echo = measure_echo(backend, sized, run, name)
                    echo["scale"] = size
                    emit(echo)
                    records.append(echo)
                    workload = WORKLOADS[name]
                    record = with_echo_ratio(measure_on(servers, workload, sized, run), echo, workload)
                    record.update(filled)
                    emit(record)
                    records.append(record)
    return records


_FIGURES = (
    ("x echo", "ratio_to_echo", "{:.3f}"),
    ("calls/s", "ops_per_s", "{:,.0f}"),
    ("server CPU us/call", "server_cpu_us_per_op", "{:,.0f}"),
    ("server CPU x echo", "server_cpu_to_echo", "{:.2f}"),
    ("RSS filled MB", "rss_filled_mb", "{:,.0f}"),
    ("RSS after MB", "server_rss_mb", "{:,.0f}"),
)


def side_by_side(summary: list[Record], scales: list[Scale]) -> str:
    """A Markdown table of the medians: for each workload one row per size, and how its ratio
    to echo and its server CPU per call changed from the first size."""
    by_key = {(record["workload"], record.get("scale")): record for record in summary}
    names = list(dict.fromkeys(record["workload"] for record in summary if record["workload"] != "echo"))
    header = [
        "workload",
        "keys + leases",
        *(title for title, _, _ in _FIGURES),
        "x echo vs first",
        "CPU vs first",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        first = by_key.get((name, scales[0].name), {})
        for scale in scales:
            record = by_key.get((name, scale.name), {})
            row = [name, f"{scale.keys:,} + {scale.leases:,}"]
            for _, field, form in _FIGURES:
                value = record.get(field)
                row.append(form.format(value) if isinstance(value, int | float) else "-")
            row.append(_change(record.get("ratio_to_echo"), first.get("ratio_to_echo")))
            row.append(_change(record.get("server_cpu_us_per_op"), first.get("server_cpu_us_per_op")))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _change(value: object, base: object) -> str:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or not base:
        return "-"
    return f"{(value / base - 1) * 100:+.0f}%"
