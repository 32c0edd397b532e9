"""`lockservice health`: asks a server's grpc.health.v1 service whether it is SERVING.

Exit status 0 when it is, 1 otherwise (NOT_SERVING while starting, draining or cut off from its
store; unknown service, unreachable, TLS refused, timed out), with one line saying which: made
for container health checks (Docker HEALTHCHECK, Kubernetes exec probes, systemd watchdogs).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lockservice.rpc.tls import channel_credentials

__all__ = ["HealthCheck", "check_health"]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    target: str
    service: str = ""
    timeout_seconds: float = 5.0
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_server_name: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)


def _channel(check: HealthCheck) -> grpc.Channel:
    if not check.tls:
        return grpc.insecure_channel(check.target)
    options = []
    if check.tls_server_name:
        options.append(("grpc.ssl_target_name_override", check.tls_server_name))
    credentials = channel_credentials(check.tls_ca, check.tls_cert, check.tls_key)
    return grpc.secure_channel(check.target, credentials, options=options)


def check_health(check: HealthCheck) -> int:
    """0 when the service reports SERVING; 1 otherwise. Prints one line either way."""
    try:
        with _channel(check) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=check.service), timeout=check.timeout_seconds
            )
    except OSError as error:
        print(f"lockservice health: cannot read a TLS file: {error}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        code = error.code()
        name = code.name if code is not None else "UNKNOWN"
        print(f"lockservice health: {check.target}: {name}: {error.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{check.target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
