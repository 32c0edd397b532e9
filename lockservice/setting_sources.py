"""Where each server setting comes from: every setting listed once (`OPTIONS`), and the one
precedence that resolves it into `lockservice.settings.Settings`.

Each option is a flag (`--max-key-bytes`), an environment variable (`LOCKSERVICE_MAX_KEY_BYTES`)
and a key of the optional TOML config file (`max-key-bytes = 512`). For each option the first
of these that is set wins:

    flag  >  LOCKSERVICE_* variable  >  config file (--config / LOCKSERVICE_CONFIG)  >  default

The defaults are those of `Settings` and `Limits`, so they are written down once.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lockservice.core.limits import Limits
from lockservice.settings import Settings

__all__ = ["CONFIG_VARIABLE", "OPTIONS", "Option", "default_text", "resolve"]

CONFIG_VARIABLE = "LOCKSERVICE_CONFIG"


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("is not a string")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError("is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("is not an integer")


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError("is not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError("is not a number")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _switch(value: object) -> bool:
    """On or off: a TOML boolean, or 1/true/yes/on and 0/false/no/off (a variable's text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("is not true or false")


def _mode(value: object) -> int:
    """A file mode in octal, as chmod takes it: "0660" or "660" (or a TOML 0o660)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 8)
        except ValueError:
            pass
    raise ValueError("is not an octal file mode such as 0660")


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # the flag without its dashes, and the config-file key
    field: str  # the Settings field, or "limits.<field>" for a Limits field
    parse: Callable[[object], Any]
    help: str
    metavar: str

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def is_switch(self) -> bool:
        """A flag that takes no value (`--reuse-port`); its variable and key take true / false."""
        return self.parse is _switch

    @property
    def variable(self) -> str:
        return "LOCKSERVICE_" + self.name.upper().replace("-", "_")

    def default(self) -> Any:
        if self.field.startswith("limits."):
            return getattr(Limits(), self.field.removeprefix("limits."))
        return getattr(Settings(), self.field)


def _option(name: str, field: str, parse: Callable[[object], Any], help_text: str, metavar: str) -> Option:
    return Option(name=name, field=field, parse=parse, help=help_text, metavar=metavar)


OPTIONS: tuple[Option, ...] = (
    _option("listen", "listen", _text, "gRPC address: HOST:PORT or unix:PATH", "ADDRESS"),
    _option("db", "db", _text, "SQLite database file", "PATH"),
    _option("store", "store", _text, "storage URL: sqlite:PATH or postgresql://... (default: --db)", "URL"),
    _option("log-level", "log_level", _text, "debug, info, warning or error", "LEVEL"),
    _option("log-format", "log_format", _text, "json, console, or auto (console on a terminal)", "FORMAT"),
    _option("event-loop", "event_loop", _text, "uvloop (faster) or asyncio (the standard loop)", "LOOP"),
    _option("grace-period", "grace_period_seconds", _number, "seconds SIGTERM waits for calls", "SECONDS"),
    _option(
        "metrics-listen", "metrics_listen", _text, "Prometheus /metrics HOST:PORT (off if empty)", "ADDRESS"
    ),
    _option(
        "http-listen",
        "http_listen",
        _text,
        "HTTP adapter HOST:PORT, served beside gRPC (off if empty)",
        "ADDRESS",
    ),
    _option(
        "http-max-connections",
        "http_max_connections",
        _integer,
        "open HTTP connections; more are closed at once",
        "N",
    ),
    _option(
        "http-header-timeout",
        "http_header_timeout_seconds",
        _number,
        "seconds an HTTP connection has to send a request's headers",
        "SECONDS",
    ),
    _option(
        "http-keepalive-timeout",
        "http_keepalive_timeout_seconds",
        _number,
        "seconds an idle kept-alive HTTP connection stays open",
        "SECONDS",
    ),
    _option(
        "reuse-port",
        "reuse_port",
        _switch,
        "let several processes serve the --listen (and --http-listen) port; PostgreSQL only",
        "",
    ),
    _option(
        "health-listen",
        "health_listen",
        _text,
        "plaintext HOST:PORT serving only grpc.health.v1, for probes (off if empty)",
        "ADDRESS",
    ),
    _option("tls-cert", "tls_cert", _text, "PEM certificate chain of the server: turns TLS on", "PATH"),
    _option("tls-key", "tls_key", _text, "PEM private key of --tls-cert", "PATH"),
    _option("tls-client-ca", "tls_client_ca", _text, "PEM CA bundle: require client certs (mTLS)", "PATH"),
    _option("auth-tokens", "auth_tokens", _text, "file of 'IDENTITY TOKEN' lines: bearer-token auth", "PATH"),
    _option("auth-policy", "auth_policy", _text, "TOML authorization table of [[grant]]s", "PATH"),
    _option("socket-mode", "socket_mode", _mode, "file mode of a unix:PATH socket, in octal", "MODE"),
    _option("history-versions", "limits.history_versions", _integer, "versions kept per key", "N"),
    _option("max-key-bytes", "limits.max_key_bytes", _integer, "longest key, in bytes", "BYTES"),
    _option("max-value-bytes", "limits.max_value_bytes", _integer, "largest value, in bytes", "BYTES"),
    _option(
        "request-id-retention",
        "limits.request_id_retention_seconds",
        _integer,
        "seconds a request_id remembers its answer",
        "SECONDS",
    ),
    _option("max-lease-ttl", "limits.max_lease_ttl_seconds", _integer, "longest lease TTL", "SECONDS"),
    _option(
        "lock-delay",
        "limits.default_lock_delay_seconds",
        _number,
        "seconds a lock stays unavailable after its holder's lease expires",
        "SECONDS",
    ),
    _option(
        "memory-budget",
        "limits.memory_budget_bytes",
        _integer,
        "bytes of values held for clients: read cache, reply pages, watcher queues",
        "BYTES",
    ),
    _option("max-waiters", "limits.max_waiters_per_lock", _integer, "callers queued per lock", "N"),
    _option("max-leases", "limits.max_leases", _integer, "live leases in the store", "N"),
    _option(
        "max-streams-per-client",
        "max_streams_per_client",
        _integer,
        "open Watch and KeepAlive streams per client",
        "N",
    ),
    _option("max-watchers-per-client", "max_watchers_per_client", _integer, "open watches per client", "N"),
    _option("watch-history", "watch_history_revisions", _integer, "revisions Watch can replay", "N"),
    _option("watch-queue-size", "limits.watch_queue_size", _integer, "responses a watcher may lag", "N"),
)


def default_text(option: Option) -> str:
    """The default as the help and the options table (docs/operations.md) show it."""
    value = option.default()
    if isinstance(value, bool):
        return "on" if value else "off"
    if option.parse is _mode:
        return f"0{value:o}"
    if value == "":
        return "off" if option.name != "store" else "uses --db"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _read_config(path: str) -> tuple[dict[str, Any], list[str]]:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        return {}, [f"--config: cannot read {path}: {error.strerror or error.__class__.__name__}"]
    except tomllib.TOMLDecodeError as error:
        return {}, [f"--config: {path} is not valid TOML: {error}"]
    known = {option.name for option in OPTIONS}
    problems = [
        f"--config: {path} has an unknown setting {key!r} (see lockservice serve --help)"
        for key in data
        if key not in known
    ]
    return data, problems


def resolve(
    flags: Mapping[str, str | None], environ: Mapping[str, str] = os.environ
) -> tuple[Settings, list[str]]:
    """Settings from flags (`OPTIONS` names -> the raw text given, or None), the environment and
    the config file, by the precedence above; and every problem, one line each. The settings
    are only meaningful when there is no problem; `Settings.validate` checks them further."""
    problems: list[str] = []
    config_path = flags.get("config") or environ.get(CONFIG_VARIABLE, "")
    config: dict[str, Any] = {}
    if config_path:
        config, problems = _read_config(config_path)
    top: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for option in OPTIONS:
        raw: object
        if flags.get(option.name) is not None:
            raw, source = flags[option.name], option.flag
        elif option.variable in environ:
            raw, source = environ[option.variable], option.variable
        elif option.name in config:
            raw, source = config[option.name], f"{option.name} in {config_path}"
        else:
            continue
        try:
            value = option.parse(raw)
        except (TypeError, ValueError) as error:
            problems.append(f"{source}: {raw!r} {error}")
            continue
        if option.field.startswith("limits."):
            limits[option.field.removeprefix("limits.")] = value
        else:
            top[option.field] = value
    return Settings(**top, limits=Limits(**limits)), problems
