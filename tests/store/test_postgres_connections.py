"""How the PostgreSQL store names its database in messages (every host, never the password), and
the dead-peer detection its connections get unless the URL chooses its own."""

from __future__ import annotations

import pytest

from lockservice.store.postgres.connections import dead_peer_options, describe_target


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://lockservice:secret@db:5433/locks", "lockservice@db:5433/locks"),
        ("postgresql:///locks", "localhost/locks"),
        (
            "postgresql://lockservice:secret@db1:5432,db2:5433/locks?target_session_attrs=read-write",
            "lockservice@db1:5432,db2:5433/locks",
        ),
        # One port for every host, as libpq reads it; a host with no port uses the default.
        ("postgresql://db1,db2:6000/locks", "db1,db2:6000/locks"),
        ("postgresql://db1,db2/locks?port=6000", "db1:6000,db2:6000/locks"),
        ("postgresql://lockservice:p%zzw@db/locks", "the --store URL"),
    ],
)
def test_describe_target_names_every_host_and_never_the_password(url: str, named: str) -> None:
    assert describe_target(url) == named


def test_dead_peer_detection_is_added_unless_the_url_sets_it() -> None:
    assert dead_peer_options("postgresql://db/locks") == {
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
    }
    chosen = dead_peer_options("postgresql://db1,db2/locks?keepalives_idle=30&tcp_user_timeout=0")
    assert chosen == {"keepalives": 1, "keepalives_interval": 2, "keepalives_count": 3}
