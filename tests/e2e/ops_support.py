"""Helpers for the operations tests: test certificates made at test time, auth files, TLS
readiness, metric scraping and log reading. No private key is ever committed: each test run
makes its own in its temporary directory."""

from __future__ import annotations

import datetime
import ipaddress
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import READINESS_CHANNEL_OPTIONS, ServerProcess

_ONE_DAY = datetime.timedelta(days=1)
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Pem(cert_path, key_path)


class CertificateAuthority:
    """A throwaway CA that signs a server certificate for localhost and client certificates."""

    def __init__(self, directory: Path, name: str = "lockservice test CA") -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        stem = name.replace(" ", "-")
        self.pem = _write(directory, stem, self._cert, self._key)

    def issue(
        self,
        common_name: str,
        *,
        server: bool,
        alternative_names: list[x509.GeneralName] | None = None,
        with_common_name: bool = True,
    ) -> Pem:
        """A certificate for `common_name` (also its file name; left out of the subject when not
        `with_common_name`), with `alternative_names` as its SANs (a client's only)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = (
            _name(common_name)
            if with_common_name
            else x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lockservice tests")])
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + _ONE_DAY)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        elif alternative_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        usage = (
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return _write(self.directory, common_name, builder.sign(self._key, hashes.SHA256()), key)


def tls_channel(address: str, ca: Pem, client: Pem | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    # A subchannel pool of its own: channels to one address with other credentials must not
    # share a connection (nor its failed handshake).
    options = [("grpc.use_local_subchannel_pool", 1), *READINESS_CHANNEL_OPTIONS]
    return grpc.secure_channel(address, credentials, options=options)


def write_tokens(directory: Path, tokens: dict[str, str]) -> Path:
    """An --auth-tokens file from identity -> token."""
    path = directory / "tokens"
    lines = ["# identity token"] + [f"{identity} {token}" for identity, token in tokens.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


class PolicyServers:
    """A module's servers with bearer `tokens` (identity -> token) and the TOML `policy`: one
    per backend, started on first use and shared by the module's tests; `stop()` ends them."""

    def __init__(self, name: str, policy: str, tokens: dict[str, str]) -> None:
        self._name = name
        self._policy = policy
        self._tokens = tokens
        self._servers: dict[str, ServerProcess] = {}

    def get(self, backend: str, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
        server = self._servers.get(backend)
        if server is None:
            workdir = tmp_path_factory.mktemp(f"{self._name}-{backend}")
            policy_file = workdir / "policy.toml"
            policy_file.write_text(self._policy)
            tokens_file = write_tokens(workdir, self._tokens)
            server = ServerProcess(
                workdir, backend, ["--auth-tokens", str(tokens_file), "--auth-policy", str(policy_file)]
            ).start()
            self._servers[backend] = server
        return server

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def log_records(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    """The JSON log records of `event` the server wrote so far."""
    records = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                records.append(record)
    return records
