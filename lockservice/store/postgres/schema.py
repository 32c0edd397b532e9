"""The PostgreSQL schema and its versioned migrations.

Replicas starting at once all call `migrate`: a transaction-scoped advisory lock lets exactly one
apply each pending migration while the others wait, then find nothing left to do. Once
committed, each applied migration is logged, one line each
(`lockservice.store.migrations.log_applied`); `schema_version` reads the version without
changing anything.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from lockservice.store.migrations import Applied, apply_pending, log_applied
from lockservice.store.rows import new_page_token_secret

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "SCHEMA_VERSION", "migrate", "schema_version"]

Conn = psycopg.Connection[tuple[object, ...]]

MIGRATION_LOCK = 0x6C6F636B  # "lock": the advisory lock key all lockservice replicas agree on

_V1 = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted_revision', 0);
CREATE TABLE resources (
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    version BIGINT NOT NULL,
    create_revision BIGINT NOT NULL,
    mod_revision BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    lease_id TEXT NOT NULL
);
CREATE INDEX resources_lease_id ON resources (lease_id) WHERE lease_id <> '';
CREATE TABLE resource_versions (
    key TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    value BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    create_revision BIGINT NOT NULL,
    mod_revision BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    lease_id TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
CREATE TABLE request_answers (
    request_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE INDEX request_answers_created_us ON request_answers (created_us);
CREATE TABLE leases (
    lease_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    grant_time_us BIGINT NOT NULL,
    expire_time_us BIGINT NOT NULL,
    owner_lock TEXT NOT NULL
);
CREATE INDEX leases_expire_time_us ON leases (expire_time_us);
CREATE TABLE locks (
    name TEXT COLLATE "C" PRIMARY KEY,
    held BOOLEAN NOT NULL,
    holder TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    token BIGINT NOT NULL,
    acquire_time_us BIGINT NOT NULL,
    lock_delay_us BIGINT NOT NULL,
    available_time_us BIGINT NOT NULL,
    grant_id TEXT NOT NULL
);
CREATE INDEX locks_lease_id ON locks (lease_id);
CREATE TABLE lock_waiters (
    seq BIGSERIAL PRIMARY KEY,
    waiter_id TEXT NOT NULL UNIQUE,
    name TEXT COLLATE "C" NOT NULL,
    holder TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    lock_delay_us BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    deadline_us BIGINT NOT NULL
);
CREATE INDEX lock_waiters_name_seq ON lock_waiters (name, seq);
CREATE INDEX lock_waiters_lease_id ON lock_waiters (lease_id);
CREATE TABLE events (
    revision BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    version BIGINT NOT NULL,
    create_revision BIGINT NOT NULL,
    mod_revision BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    lease_id TEXT NOT NULL,
    PRIMARY KEY (revision, seq)
);
CREATE INDEX events_key_revision ON events (key, revision);
"""


def _v1_tables(conn: Conn) -> None:
    conn.execute(_V1.encode())  # several statements: no parameters


def _v2_page_token_secret(conn: Conn) -> None:
    """The store's own key for signing page tokens (`core.pagination`), shared by every replica."""
    conn.execute(b"CREATE TABLE store_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)")
    conn.execute(
        b"INSERT INTO store_secrets (name, value) VALUES ('page_token', %s)",
        (new_page_token_secret(),),
    )


# 64 counter rows: replicas granting leases at once rarely update the same one.
_V3 = """
CREATE TABLE lease_counts (shard INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO lease_counts (shard, n) SELECT s, 0 FROM generate_series(0, 63) AS s;
UPDATE lease_counts SET n = (SELECT count(*) FROM leases) WHERE shard = 0;
CREATE FUNCTION lockservice_count_leases() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE lease_counts SET n = n + 1 WHERE shard = hashtext(NEW.lease_id) & 63;
    ELSE
        UPDATE lease_counts SET n = n - 1 WHERE shard = hashtext(OLD.lease_id) & 63;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER leases_counted AFTER INSERT OR DELETE ON leases
    FOR EACH ROW EXECUTE FUNCTION lockservice_count_leases();
"""


def _v3_lease_counts(conn: Conn) -> None:
    """A count of the lease rows kept by a trigger in 64 shards, so a grant checks
    `--max-leases` without counting the table (`WriteTxn.lease_rows`)."""
    conn.execute(_V3.encode())  # several statements: no parameters


MIGRATIONS: list[Callable[[Conn], None]] = [_v1_tables, _v2_page_token_secret, _v3_lease_counts]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: Conn) -> int:
    """The schema version of the database (0 for an empty one), read without writing."""
    if conn.execute("SELECT to_regclass('lockservice_schema')").fetchone() in (None, (None,)):
        return 0
    row = conn.execute("SELECT version FROM lockservice_schema").fetchone()
    return 0 if row is None else int(str(row[0]))


def migrate(conn: Conn) -> list[Applied]:
    """Brings the database up to `SCHEMA_VERSION` and returns what it applied (each logged);
    refuses a database newer than this code."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS lockservice_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM lockservice_schema").fetchone()
        current = 0 if row is None else int(str(row[0]))
        if row is None:
            conn.execute("INSERT INTO lockservice_schema (version) VALUES (0)")
        applied = apply_pending(current, MIGRATIONS, conn)
        conn.execute("UPDATE lockservice_schema SET version = %s", (SCHEMA_VERSION,))
    log_applied("postgres", applied)
    return applied
