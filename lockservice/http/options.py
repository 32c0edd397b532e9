"""How an adapter instance behaves: precondition policy, body limits, call and stream timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lockservice.core.limits import Limits
from lockservice.http.problems import ProblemOptions

__all__ = ["HttpOptions"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class HttpOptions:
    """Settings of one adapter app.

    - `problems`: how errors are answered (strict RFC 9110 412s, problem type URIs).
    - `require_preconditions`: an unconditional resource PUT or DELETE is refused with 428.
    - `max_value_bytes`: the largest raw PUT body (413 beyond); keep it equal to the server's
      `--max-value-bytes` so an oversized value is refused before it crosses the network.
    - `max_json_bytes`: the largest JSON body (a transaction carries up to 128 base64 values).
    - `call_timeout_seconds`: the gRPC deadline of each call (a lock wait is added on top).
    - `watch_open_seconds`: how long a watch waits for an immediate error (a compacted start
      revision, a bad key) so it can answer a plain problem+json rather than an SSE error event.
    - `watch_heartbeat_seconds`: an SSE comment is sent when a watch is idle this long, so
      proxies keep the stream open.
    - `require_authorization`: every call needs the caller's own `Authorization` (401 without).
      For a gateway that dials lockservice with a client certificate of its own: a caller
      without a token would otherwise act under the gateway's certificate identity.
    - `client_identity_secret`: set by `lockservice serve` for the adapter it runs in its own
      process, over its private socket: the identity of an HTTPS caller's verified client
      certificate is passed on with this secret, which only that server knows and trusts
      (`lockservice.http.identity`). Empty: never passed on.
    - `clock`: the adapter's wall clock (seconds since the epoch); `Last-Modified` is never
      later than it, nor than the `Date` a server stamps from it (`dates.DateHeader`).
    - `limits`: the server's limits, stated in the OpenAPI document (key length, TTL and wait
      ranges, ...); `lockservice serve --http-listen` passes its own.
    """

    problems: ProblemOptions = field(default_factory=ProblemOptions)
    require_preconditions: bool = False
    max_value_bytes: int = _MIB
    max_json_bytes: int = 8 * _MIB
    call_timeout_seconds: float = 30.0
    watch_open_seconds: float = 0.2
    watch_heartbeat_seconds: float = 15.0
    require_authorization: bool = False
    client_identity_secret: str = field(default="", repr=False)
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = field(default=time.time, repr=False)
