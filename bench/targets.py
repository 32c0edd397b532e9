"""Issue 20's table: its rows, their targets, and the judgement of measured rounds against them.

A round is one pass over every row's runs, the records keyed by run name (`get`, `put@stored`,
`cas-hot-naive@etcd`, ...; `bench.table` measures them). Each row reads one or more figures from
a round (a record's field, or one derived from two records of the same round, such as the naive
clients' rate against etcd's); a figure's value is the median of its values over the rounds, and
a row is met when every judged figure of it meets its bound. Pure functions: no servers here.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.report import Record

__all__ = [
    "Criterion",
    "Outcome",
    "Round",
    "Row",
    "echo_summary",
    "issue_rows",
    "judge",
    "markdown",
]

Round = dict[str, Record]
Measure = Callable[[Round], float | None]


@dataclass(frozen=True)
class Criterion:
    """One figure of a row: `measure` reads it from a round (None: not there); `bound` is the
    target (None: shown, not judged), met when the median is at least it (`at_least`) or at
    most it."""

    label: str
    measure: Measure
    bound: float | None = None
    at_least: bool = True
    form: str = "{:.2f}"
    target_text: str = ""

    def show(self, value: float | None) -> str:
        return "-" if value is None else self.form.format(value)

    def target(self) -> str:
        if self.bound is None:
            return ""
        return self.target_text or f"{self.label} {'>=' if self.at_least else '<='} {self.show(self.bound)}"

    def met(self, value: float) -> bool:
        assert self.bound is not None
        return value >= self.bound if self.at_least else value <= self.bound


@dataclass(frozen=True)
class Row:
    """A row of the issue's table: the runs it reads (one missing from every round skips it)."""

    title: str
    runs: tuple[str, ...]
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Outcome:
    """A judged row: per criterion, its value in each round and their median; the verdict is
    "met", "missed: LABELS" or "skipped: WHY"."""

    row: Row
    values: tuple[tuple[float | None, ...], ...]
    medians: tuple[float | None, ...]
    verdict: str


def field(run: str, name: str) -> Measure:
    """A record's figure."""

    def measure(round_: Round) -> float | None:
        value = round_.get(run, {}).get(name)
        return float(value) if isinstance(value, int | float) else None

    return measure


def quotient(run: str, base: str, name: str) -> Measure:
    """`run`'s figure over `base`'s, in the same round."""

    def measure(round_: Round) -> float | None:
        value, divisor = field(run, name)(round_), field(base, name)(round_)
        return round(value / divisor, 6) if value is not None and divisor else None

    return measure


def change(run: str, base: str, name: str) -> Measure:
    """How much `run`'s figure differs from `base`'s in the same round, in percent (both rounded
    to 6 decimals, so a figure on a bound is not judged by a float's last bit)."""
    ratio = quotient(run, base, name)

    def measure(round_: Round) -> float | None:
        value = ratio(round_)
        return None if value is None else round((value - 1) * 100, 6)

    return measure


def issue_rows(keys: int, stored_keys: int, stored_leases: int) -> list[Row]:
    """Issue 20's rows and targets; the large-store rows name the sizes measured: `put`
    addresses `keys` keys, alone in the store or among `stored_keys`."""
    ratio = "x echo"
    stored = "put@stored"
    return [
        Row(
            "get",
            ("get",),
            (
                Criterion(ratio, field("get", "ratio_to_echo"), 0.85),
                Criterion(
                    "server CPU us/op",
                    field("get", "server_cpu_us_per_op"),
                    178,
                    at_least=False,
                    form="{:.0f}",
                ),
            ),
        ),
        Row("put", ("put",), (Criterion(ratio, field("put", "ratio_to_echo"), 0.70),)),
        Row(
            "cas-spread (client update())",
            ("cas-spread",),
            (
                Criterion(
                    "x echo's 2-call cycle",
                    field("cas-spread", "ratio_to_echo"),
                    0.70,
                    target_text=">= 0.70 x echo's 2-call cycle",
                ),
            ),
        ),
        Row(
            "lock pairs",
            ("lock",),
            (
                Criterion(
                    "x echo's 2-call cycle",
                    field("lock", "ratio_to_echo"),
                    0.80,
                    target_text=">= 0.80 x echo's 2-call cycle",
                ),
            ),
        ),
        Row(
            "lock-handoff",
            ("lock-handoff",),
            (
                Criterion("pairs/s", field("lock-handoff", "ops_per_s"), 1500, form="{:,.0f}"),
                Criterion("p99 ms", field("lock-handoff", "p99_ms"), 5, at_least=False),
            ),
        ),
        Row(
            "cas-hot, client update()",
            ("cas-hot",),
            (Criterion(ratio, field("cas-hot", "ratio_to_echo"), 0.07, form="{:.3f}"),),
        ),
        Row(
            "cas-hot, naive clients (read, CAS, re-read on conflict, no backoff; 64 clients)",
            ("cas-hot-naive", "cas-hot-naive@etcd"),
            (
                Criterion(
                    "x etcd",
                    quotient("cas-hot-naive", "cas-hot-naive@etcd", "ops_per_s"),
                    1.0,
                    target_text=">= etcd in the same run (x etcd >= 1.00)",
                ),
                Criterion("CAS/s", field("cas-hot-naive", "ops_per_s"), form="{:,.0f}"),
                Criterion("etcd CAS/s", field("cas-hot-naive@etcd", "ops_per_s"), form="{:,.0f}"),
                Criterion(ratio, field("cas-hot-naive", "ratio_to_echo"), form="{:.3f}"),
            ),
        ),
        Row(
            f"put with {stored_keys:,} keys stored vs {keys:,}",
            ("put", stored),
            (
                Criterion(
                    f"vs {keys:,} keys (x echo)",
                    change(stored, "put", "ratio_to_echo"),
                    -10,
                    form="{:+.0f}%",
                    target_text="within 10% (>= -10%)",
                ),
                Criterion(ratio, field(stored, "ratio_to_echo")),
            ),
        ),
        Row(
            f"RSS, {stored_keys:,} keys + {stored_leases:,} leases",
            (stored,),
            (
                Criterion(
                    "MB",
                    field(stored, "server_rss_mb"),
                    300,
                    at_least=False,
                    form="{:.0f}",
                    target_text="<= 300 MB",
                ),
            ),
        ),
    ]


def judge(rows: Sequence[Row], rounds: Sequence[Round], skipped: dict[str, str]) -> list[Outcome]:
    """Each row's figures over the rounds, their medians and its verdict. A row reading a run
    named in `skipped` (run -> "skipped: why") gets that verdict; a judged figure with no value
    in any round is missed."""
    outcomes = []
    for row in rows:
        reasons = [skipped[run] for run in row.runs if run in skipped]
        values = tuple(tuple(criterion.measure(round_) for round_ in rounds) for criterion in row.criteria)
        medians = tuple(_median(series) for series in values)
        if reasons:
            verdict = reasons[0]
        else:
            missed = [
                criterion.label
                for criterion, value in zip(row.criteria, medians, strict=True)
                if criterion.bound is not None and (value is None or not criterion.met(value))
            ]
            verdict = f"missed: {', '.join(missed)}" if missed else "met"
        outcomes.append(Outcome(row, values, medians, verdict))
    return outcomes


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def markdown(outcomes: Sequence[Outcome]) -> str:
    """The table: row, measured median, target, met/missed, and each round's values."""
    lines = ["| row | measured (median) | target | met? | runs |", "|---|---|---|---|---|"]
    for outcome in outcomes:
        criteria = outcome.row.criteria
        if outcome.verdict.startswith("skipped"):
            measured, verdict, runs = outcome.verdict, "skipped", "-"
        else:
            measured = ", ".join(
                f"{criterion.show(value)} {criterion.label}"
                for criterion, value in zip(criteria, outcome.medians, strict=True)
            )
            verdict = outcome.verdict
            runs = "; ".join(
                " / ".join(criterion.show(value) for value in series)
                for criterion, series in zip(criteria, outcome.values, strict=True)
            )
        target = ", ".join(criterion.target() for criterion in criteria if criterion.bound is not None)
        lines.append(f"| {outcome.row.title} | {measured} | {target} | {verdict} | {runs} |")
    return "\n".join(lines)


def echo_summary(echoes: Sequence[Record]) -> str:
    """One line on the echo runs of the table: their calls/s and server CPU per call."""
    rates = [float(record["ops_per_s"]) for record in echoes]
    cpu = [float(record["server_cpu_us_per_op"]) for record in echoes]
    if not rates:
        return "echo: no runs"
    return (
        f"echo (bare grpc.aio, {len(rates)} runs, one right before each workload): "
        f"median {statistics.median(rates):,.0f} calls/s (from {min(rates):,.0f} to {max(rates):,.0f}), "
        f"server CPU {statistics.median(cpu):.0f} us/call"
    )
