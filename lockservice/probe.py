"""`python -m lockservice.probe HOST:PORT`: the image's HEALTHCHECK, as cheap as a probe can be.

Asks grpc.health.v1 on the plaintext health-only port (`--health-listen`) whether the server is
SERVING: exit 0 if so, 1 otherwise, one line either way. It imports grpc and the health stubs
only (no server code), so each probe costs ~0.1 s of CPU and ~40 MB where `lockservice health`
(the whole CLI) costs ~0.6 s and ~76 MB; and the health port is plaintext whether or not the API
port speaks TLS, so the probe needs no certificate. For TLS targets use `lockservice health`.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["probe"]

_TIMEOUT_SECONDS = 3.0


def probe(target: str, service: str = "") -> int:
    """0 when `target` reports `service` SERVING, 1 otherwise (also when unreachable)."""
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=_TIMEOUT_SECONDS
            )
    except grpc.RpcError as error:
        print(f"{target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: python -m lockservice.probe HOST:PORT [SERVICE]", file=sys.stderr)
        sys.exit(2)
    sys.exit(probe(*sys.argv[1:]))
