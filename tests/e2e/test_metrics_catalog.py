"""What a live server exports, against what is written about it: every family it exports has a
row in the metrics table ("Metrics", docs/operations.md), and every metric the alert rules and the
Grafana dashboard query is one it exports. Generic on purpose: a metric added anywhere is held to both."""

from __future__ import annotations

import fnmatch
import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from bench.ports import free_port
from tests.docs import section
from tests.e2e.support import ServerFactory
from tests.test_monitoring import queried_expressions

# Every name an expression can mean: ours, and the client library's process and runtime ones.
_METRIC_NAME = re.compile(r"\b(?:lockservice|process|python)_[a-z0-9_]+\b")
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def exported(port: int) -> dict[str, str]:
    """{family name as /metrics writes it in # TYPE: its type}, from one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "_created" not in text  # prometheus_client's timestamps are off (rpc/metrics.py)
    families = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = family.type
    return families


def sample_names(families: dict[str, str]) -> set[str]:
    """Every sample name the families can carry (the names a query selects)."""
    names = set()
    for name, kind in families.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        names |= {base + suffix for suffix in _SAMPLE_SUFFIXES[kind]}
    return names


def readme_metric_patterns(title: str = "Metrics") -> list[str]:
    """The backquoted names in the first column of the table under the heading `title`, before
    its first sub-heading (`*` globs)."""
    rest = section(title)
    rows = [line for line in rest.split("\n\n#", 1)[0].splitlines() if line.startswith("| `")]
    assert rows, f"no metrics table under {title}"
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def undocumented(families: dict[str, str], patterns: list[str]) -> list[str]:
    return sorted(
        name for name in families if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    )


def test_every_exported_family_is_in_the_readme_and_every_queried_one_is_exported(
    server_factory: ServerFactory,
) -> None:
    port = free_port()
    server = server_factory(["--metrics-listen", f"127.0.0.1:{port}"]).start()
    families = exported(port)
    assert "lockservice_rpc_calls_total" in families
    assert undocumented(families, readme_metric_patterns()) == []
    queried = {name for expr in queried_expressions() for name in _METRIC_NAME.findall(expr)}
    assert {"lockservice_lock_wait_seconds_bucket", "lockservice_store_available"} <= queried
    assert sorted(queried - sample_names(families)) == []
    assert server.stop() == 0
