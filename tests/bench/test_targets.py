"""Issue 20's table judged from measured rounds (`bench.targets`): medians over the rounds, each
row met only when every judged figure meets its bound, a row reading a skipped run skipped,
figures derived from two runs of the same round, and the Markdown it prints. No servers."""

from __future__ import annotations

from bench.report import Record
from bench.targets import Criterion, Round, Row, echo_summary, field, issue_rows, judge, markdown


def _rounds(**runs: list[Record]) -> list[Round]:
    """Rounds from each run's records, one record per round."""
    count = len(next(iter(runs.values())))
    return [{name: records[index] for name, records in runs.items()} for index in range(count)]


def _issue_rounds() -> list[Round]:
    """Three rounds of every run the issue table reads."""

    def ratios(*values: float, **extra: float) -> list[Record]:
        return [{"ratio_to_echo": value, **extra} for value in values]

    return _rounds(
        **{
            "get": [
                {"ratio_to_echo": 0.84, "server_cpu_us_per_op": 170},
                {"ratio_to_echo": 0.90, "server_cpu_us_per_op": 181},
                {"ratio_to_echo": 0.88, "server_cpu_us_per_op": 176},
            ],
            "put": ratios(0.50, 0.60, 0.40),
            "cas-spread": ratios(0.71, 0.72, 0.60),
            "lock": ratios(0.81, 0.79, 0.80),
            "lock-handoff": [
                {"ops_per_s": 1400.0, "p99_ms": 2.4},
                {"ops_per_s": 1600.0, "p99_ms": 2.6},
                {"ops_per_s": 1450.0, "p99_ms": 6.0},
            ],
            "cas-hot": ratios(0.071, 0.069, 0.08),
            "cas-hot-naive": [
                {"ops_per_s": 300.0, "ratio_to_echo": 0.05},
                {"ops_per_s": 200.0, "ratio_to_echo": 0.04},
                {"ops_per_s": 260.0, "ratio_to_echo": 0.045},
            ],
            "cas-hot-naive@etcd": [{"ops_per_s": 250.0}, {"ops_per_s": 250.0}, {"ops_per_s": 200.0}],
            "put@stored": [
                {"ratio_to_echo": 0.45, "server_rss_mb": 180.0},
                {"ratio_to_echo": 0.57, "server_rss_mb": 310.0},
                {"ratio_to_echo": 0.30, "server_rss_mb": 175.0},
            ],
        }
    )


def test_issue_rows_judge_the_median_of_each_figure_against_its_target() -> None:
    outcomes = judge(issue_rows(10_000, 1_000_000, 10_000), _issue_rounds(), {})
    verdicts = {outcome.row.title: (outcome.medians, outcome.verdict) for outcome in outcomes}
    assert verdicts == {
        "get": ((0.88, 176.0), "met"),
        "put": ((0.50,), "missed: x echo"),
        "cas-spread (client update())": ((0.71,), "met"),
        "lock pairs": ((0.80,), "met"),
        "lock-handoff": ((1450.0, 2.6), "missed: pairs/s"),
        "cas-hot, client update()": ((0.071,), "met"),
        "cas-hot, naive clients (read, CAS, re-read on conflict, no backoff; 64 clients)": (
            (1.2, 260.0, 250.0, 0.045),
            "met",
        ),
        "put with 1,000,000 keys stored vs 10,000": ((-10.0, 0.45), "met"),
        "RSS, 1,000,000 keys + 10,000 leases": ((180.0,), "met"),
    }


def test_derived_figures_come_from_the_runs_of_the_same_round() -> None:
    outcomes = judge(issue_rows(10_000, 1_000_000, 10_000), _issue_rounds(), {})
    naive, stored = outcomes[6], outcomes[7]
    assert naive.values[0] == (1.2, 0.8, 1.3)  # 300/250, 200/250, 260/200
    assert stored.values[0] == (-10.0, -5.0, -25.0)  # 0.45/0.50, 0.57/0.60, 0.30/0.40


def test_a_row_reading_a_skipped_run_is_skipped_and_says_why() -> None:
    rounds = [
        {name: record for name, record in round_.items() if "@etcd" not in name} for round_ in _issue_rounds()
    ]
    skipped = {"cas-hot-naive@etcd": "skipped: etcd not installed"}
    outcomes = judge(issue_rows(10_000, 1_000_000, 10_000), rounds, skipped)
    assert [outcome.verdict for outcome in outcomes if outcome.verdict.startswith("skipped")] == [
        "skipped: etcd not installed"
    ]
    table = markdown(outcomes).splitlines()
    assert table[8] == (
        "| cas-hot, naive clients (read, CAS, re-read on conflict, no backoff; 64 clients) "
        "| skipped: etcd not installed | >= etcd in the same run (x etcd >= 1.00) | skipped | - |"
    )


def test_a_judged_figure_missing_from_every_round_is_missed_and_an_unjudged_one_is_not() -> None:
    row = Row(
        "r",
        ("a",),
        (
            Criterion("x echo", field("a", "ratio_to_echo"), 0.5),
            Criterion("shown", field("a", "absent")),
        ),
    )
    (outcome,) = judge([row], [{"a": {"ratio_to_echo": 0.6}}], {})
    assert (outcome.medians, outcome.verdict) == ((0.6, None), "met")
    (outcome,) = judge([row], [{"a": {}}, {"a": {"ratio_to_echo": "n/a"}}], {})
    assert (outcome.values, outcome.medians, outcome.verdict) == (
        ((None, None), (None, None)),
        (None, None),
        "missed: x echo",
    )


def test_a_bound_met_exactly_is_met_either_way() -> None:
    at_least = Criterion("x", field("a", "v"), 0.7)
    at_most = Criterion("y", field("a", "v"), 0.7, at_least=False)
    assert at_least.met(0.7) and at_most.met(0.7)
    assert not at_least.met(0.69) and not at_most.met(0.71)


def test_markdown_shows_medians_targets_verdicts_and_every_round() -> None:
    outcomes = judge(issue_rows(10_000, 1_000_000, 10_000), _issue_rounds(), {})
    assert markdown(outcomes).splitlines() == [
        "| row | measured (median) | target | met? | runs |",
        "|---|---|---|---|---|",
        "| get | 0.88 x echo, 176 server CPU us/op | x echo >= 0.85, server CPU us/op <= 178 | met "
        "| 0.84 / 0.90 / 0.88; 170 / 181 / 176 |",
        "| put | 0.50 x echo | x echo >= 0.70 | missed: x echo | 0.50 / 0.60 / 0.40 |",
        "| cas-spread (client update()) | 0.71 x echo's 2-call cycle | >= 0.70 x echo's 2-call cycle "
        "| met | 0.71 / 0.72 / 0.60 |",
        "| lock pairs | 0.80 x echo's 2-call cycle | >= 0.80 x echo's 2-call cycle | met "
        "| 0.81 / 0.79 / 0.80 |",
        "| lock-handoff | 1,450 pairs/s, 2.60 p99 ms | pairs/s >= 1,500, p99 ms <= 5.00 | missed: pairs/s "
        "| 1,400 / 1,600 / 1,450; 2.40 / 2.60 / 6.00 |",
        "| cas-hot, client update() | 0.071 x echo | x echo >= 0.070 | met | 0.071 / 0.069 / 0.080 |",
        "| cas-hot, naive clients (read, CAS, re-read on conflict, no backoff; 64 clients) "
        "| 1.20 x etcd, 260 CAS/s, 250 etcd CAS/s, 0.045 x echo | >= etcd in the same run (x etcd >= 1.00) "
        "| met | 1.20 / 0.80 / 1.30; 300 / 200 / 260; 250 / 250 / 200; 0.050 / 0.040 / 0.045 |",
        "| put with 1,000,000 keys stored vs 10,000 | -10% vs 10,000 keys (x echo), 0.45 x echo "
        "| within 10% (>= -10%) | met | -10% / -5% / -25%; 0.45 / 0.57 / 0.30 |",
        "| RSS, 1,000,000 keys + 10,000 leases | 180 MB | <= 300 MB | met | 180 / 310 / 175 |",
    ]


def test_echo_summary_gives_the_median_and_range_of_the_echo_runs() -> None:
    echoes: list[Record] = [
        {"ops_per_s": 5600.0, "server_cpu_us_per_op": 150.0},
        {"ops_per_s": 6300.0, "server_cpu_us_per_op": 160.0},
        {"ops_per_s": 5900.0, "server_cpu_us_per_op": 155.0},
    ]
    assert echo_summary(echoes) == (
        "echo (bare grpc.aio, 3 runs, one right before each workload): "
        "median 5,900 calls/s (from 5,600 to 6,300), server CPU 155 us/call"
    )
    assert echo_summary([]) == "echo: no runs"
