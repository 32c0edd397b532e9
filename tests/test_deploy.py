"""deploy/ without a Docker engine or a cluster: every manifest parses, and every command, flag,
variable, port, volume and file it names is one that exists. The image's install steps and
HEALTHCHECK run for real in CI (`python deploy/check_image.py`)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from bench.ports import free_port
from lockservice.authfiles import load_policy
from lockservice.rpc.lifecycle import LIVENESS_SERVICE
from lockservice.setting_sources import CONFIG_VARIABLE, OPTIONS, resolve
from lockservice.settings import Settings
from tests.conftest import LOCKSERVICE, ServerProcess, wait_until_serving
from tests.e2e.ops_support import CertificateAuthority
from tests.e2e.pg_pair import PRIMARY_CONF, conf_settings, server_binaries

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
FLAGS = {option.name for option in OPTIONS} | {"config"}
VARIABLES = {option.variable for option in OPTIONS} | {CONFIG_VARIABLE, "LOCKSERVICE_TARGET"}


def check_image() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_image", DEPLOY / "check_image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_flags(args: list[str]) -> dict[str, str]:
    """`serve --flag=value ...` -> {flag: value}, every flag one that `serve` has."""
    assert args[0] == "serve", args
    flags = {}
    rest = iter(args[1:])
    for arg in rest:
        name, equals, value = arg.removeprefix("--").partition("=")
        assert arg.startswith("--") and name in FLAGS, f"unknown flag {arg}"
        flags[name] = value if equals else next(rest)
    return flags


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def settings_file_is_clean(path: Path, text: str) -> dict[str, str]:
    path.write_text(text)
    flags: dict[str, str | None] = dict.fromkeys(FLAGS)
    flags["config"] = str(path)
    settings, problems = resolve(flags, {})
    assert problems == []
    return {option.name: str(getattr(settings, option.field, "")) for option in OPTIONS}


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    module = check_image()
    steps = dict(module.instructions(text))
    assert steps["USER"] == "10001:10001"  # never root
    # The user's group has the user's id (not the next system GID), so runAsGroup 10001 matches.
    (setup,) = [rest for word, rest in module.instructions(text) if word == "RUN" and "useradd" in rest]
    assert "groupadd --system --gid 10001 lockservice" in setup
    assert "useradd --system --uid 10001 --gid 10001 " in setup
    # Both stages on one pinned release of the base image, never a floating tag.
    bases = [rest.split()[0] for word, rest in module.instructions(text) if word == "FROM"]
    assert len(bases) == 2 and len(set(bases)) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[0])
    # The HEALTHCHECK asks the plaintext health-only port with the cheap probe: TLS on the API
    # port cannot fail it.
    probe = module.healthcheck(text)
    assert probe[:4] == ["python", "-I", "-m", "lockservice.probe"]
    assert port_of(probe[4]) == port_of(module.image_env(text)["LOCKSERVICE_HEALTH_LISTEN"])
    assert str(port_of(probe[4])) in steps["EXPOSE"].split()
    assert steps["ENTRYPOINT"] == '["lockservice"]'
    assert steps["CMD"] == '["serve"]'
    assert "50051" in steps["EXPOSE"].split()
    for word, rest in module.instructions(text):
        if word == "ENV":
            for pair in rest.split():
                name = pair.split("=", 1)[0]
                assert not name.startswith("LOCKSERVICE_") or name in VARIABLES, name
    build, image = module.pip_steps(text)
    assert build == ["python -m pip wheel --no-cache-dir --wheel-dir /wheels ./clients/python ."]
    assert image == ["python -m pip install --no-cache-dir --no-index --find-links=/wheels lockservice"]
    copied = [
        source
        for word, rest in module.instructions(text)
        if word == "COPY" and "--from" not in rest
        for source in rest.split()[:-1]
    ]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for path in ("pyproject.toml", "README.md", "lockservice"):
        assert path in copied
        assert f"!{path}" in ignore


def test_docker_compose() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    sidecar = compose["services"]["lockservice"]
    assert (DEPLOY / sidecar["build"]["context"] / sidecar["build"]["dockerfile"]).is_file()
    flags = serve_flags(sidecar["command"])
    assert set(sidecar["environment"]) <= VARIABLES
    probe = ["CMD", "python", "-I", "-m", "lockservice.probe", flags["listen"]]
    assert sidecar["healthcheck"]["test"] == probe
    app = compose["services"]["app"]
    assert app["environment"]["LOCKSERVICE_TARGET"] == flags["listen"]
    assert app["depends_on"]["lockservice"]["condition"] == "service_healthy"
    socket_dir = str(Path(flags["listen"].removeprefix("unix:")).parent)
    for service in (sidecar, app):
        assert f"lockservice-socket:{socket_dir}" in service["volumes"]
    assert set(compose["volumes"]) == {"lockservice-data", "lockservice-socket"}


def lockservice_containers(document: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    spec = document["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    containers = pod.get("initContainers", []) + pod["containers"]
    return [(pod, c) for c in containers if "/lockservice:" in c["image"]]


def check_container(pod: dict[str, Any], container: dict[str, Any], settings: dict[str, str]) -> None:
    flags = serve_flags(container["args"])
    env = {env["name"]: env.get("value") for env in container.get("env", [])}
    assert set(env) <= VARIABLES | {"TMPDIR"}
    # A read-only root has no usable temporary directory: TMPDIR names a writable emptyDir.
    if container["securityContext"].get("readOnlyRootFilesystem"):
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        scratch = next(volume for volume in pod["volumes"] if volume["name"] == mounts[env["TMPDIR"]])
        assert "emptyDir" in scratch
    health_port = port_of(flags.get("health-listen") or settings["health-listen"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port
    # Liveness must not follow the store: a database outage would restart every replica.
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["health"] == health_port
    assert ports["metrics"] == port_of(flags.get("metrics-listen") or settings["metrics-listen"])
    volumes = {volume["name"] for volume in pod["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_kubernetes_sidecar_pod() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "sidecar-pod.yaml").read_text()))
    claim, pod = documents
    ((spec, sidecar),) = lockservice_containers(pod)
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: up before the app, down after
    check_container(spec, sidecar, {})
    flags = serve_flags(sidecar["args"])
    app = next(c for c in spec["containers"] if c["name"] == "app")
    assert {"name": "LOCKSERVICE_TARGET", "value": flags["listen"]} in app["env"]
    mounts = {m["name"]: m["mountPath"] for m in app["volumeMounts"]}
    assert mounts["socket"] == str(Path(flags["listen"].removeprefix("unix:")).parent)
    data = next(v for v in spec["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    db = next(e["value"] for e in sidecar["env"] if e["name"] == "LOCKSERVICE_DB")
    assert any(db.startswith(m["mountPath"] + "/") for m in sidecar["volumeMounts"] if m["name"] == "data")


def test_kubernetes_deployment_for_postgres(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment-postgres.yaml").read_text()))
    by_kind = {document["kind"]: document for document in documents}
    config = by_kind["ConfigMap"]["data"]
    settings = settings_file_is_clean(tmp_path / "lockservice.toml", config["lockservice.toml"])
    (tmp_path / "policy.toml").write_text(config["policy.toml"])
    assert load_policy(str(tmp_path / "policy.toml")).grants
    ((pod, container),) = lockservice_containers(by_kind["Deployment"])
    assert by_kind["Deployment"]["spec"]["replicas"] > 1
    check_container(pod, container, settings)
    env = {e["name"]: e for e in container["env"]}
    assert env["LOCKSERVICE_STORE"]["valueFrom"]["secretKeyRef"]["key"] == "url"  # never in a manifest
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(env[CONFIG_VARIABLE]["value"]).parent) in mounts
    for name in ("tls-cert", "tls-key", "tls-client-ca", "auth-tokens", "auth-policy"):
        assert str(Path(settings[name]).parent) in mounts, name
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == port_of(settings["listen"])
    services = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Service"}
    for service in services.values():
        assert service["spec"]["selector"] == by_kind["Deployment"]["spec"]["selector"]["matchLabels"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
    # gRPC balances per connection: the headless Service gives clients every replica's address.
    assert services["lockservice-headless"]["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in services["lockservice-headless"]["spec"]["ports"]] == ["grpc"]


def systemd_unit() -> dict[str, list[str]]:
    """Each key's values, in order (keys repeat in unit files)."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "lockservice.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_systemd_unit(tmp_path: Path) -> None:
    unit = systemd_unit()
    (exec_start,) = unit["ExecStart"]
    binary, *args = exec_start.split()
    assert binary == "/usr/local/bin/lockservice"
    flags = serve_flags(args)
    assert flags["config"] == "/etc/lockservice/lockservice.toml"
    for assignment in unit["Environment"]:
        assert assignment.split("=", 1)[0] in VARIABLES
    assert unit["RestartPreventExitStatus"] == ["2"]  # a bad setting is not retried in a loop
    # Started means serving: the server sends READY=1 (tests/e2e/test_sd_notify.py).
    assert (unit["Type"], unit["NotifyAccess"]) == (["notify"], ["main"])
    # The sandbox: nothing writable but its own directories, no privileges, few system calls.
    for key, value in (
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectProc", "invisible"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("UMask", "0077"),
    ):
        assert unit[key] == [value], key
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged"]
    settings_file_is_clean(tmp_path / "lockservice.toml", (DEPLOY / "lockservice.toml").read_text())
    assert load_policy(str(DEPLOY / "policy.toml")).grants


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "lockservice.service"
    text = (DEPLOY / "systemd" / "lockservice.service").read_text()
    unit.write_text(text.replace("/usr/local/bin/lockservice", LOCKSERVICE))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def _patroni_member() -> tuple[str, dict[str, Any]]:
    text = (DEPLOY / "postgres" / "patroni.yml").read_text()
    return text, yaml.safe_load(text)


def test_postgres_primary_and_patroni_replicate_synchronously() -> None:
    primary = conf_settings(PRIMARY_CONF)
    assert primary["synchronous_commit"] in {"on", "remote_apply"}
    assert primary["synchronous_standby_names"].strip("'")
    text, member = _patroni_member()
    dcs = member["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["parameters"]["synchronous_commit"] in {"on", "remote_apply"}
    assert "password" not in json.dumps(member)  # from PATRONI_* variables, never the file
    # The --store URL it shows is one `serve` accepts, and names the member among its hosts.
    (url,) = re.findall(r"--store '([^']+)'", text)
    assert Settings(store=url).validate() == []
    assert member["postgresql"]["connect_address"] in url


@pytest.mark.skipif(server_binaries() is None, reason="no PostgreSQL server binaries installed")
def test_postgres_settings_are_ones_the_server_knows() -> None:
    binaries = server_binaries()
    assert binaries is not None
    described = subprocess.run(
        [str(binaries / "postgres"), "--describe-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    known = {line.split("\t", 1)[0] for line in described.stdout.splitlines()}
    _, member = _patroni_member()
    assert set(conf_settings(PRIMARY_CONF)) <= known
    assert set(member["bootstrap"]["dcs"]["postgresql"]["parameters"]) <= known


def test_the_image_probe_passes_on_the_health_port_of_a_tls_server(tmp_path: Path) -> None:
    """The image's HEALTHCHECK against a server whose API port speaks mutual TLS: the probe asks
    the plaintext health-only port and passes; asked on the TLS port it fails."""
    authority = CertificateAuthority(tmp_path)
    pem = authority.issue("localhost", server=True)
    health = f"127.0.0.1:{free_port()}"
    server = ServerProcess(
        tmp_path,
        "sqlite",
        [
            *("--tls-cert", str(pem.cert), "--tls-key", str(pem.key)),
            *("--tls-client-ca", str(authority.pem.cert), "--health-listen", health),
        ],
    ).launch()
    try:
        assert server.process is not None
        wait_until_serving(health, server.process)
        probe = check_image().healthcheck((DEPLOY / "Dockerfile").read_text())
        command = [sys.executable, *probe[1:4], health]
        passed = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert (passed.returncode, passed.stdout) == (0, f"{health}: SERVING\n")
        refused = subprocess.run(
            [*command[:-1], server.address], capture_output=True, text=True, timeout=30, check=False
        )
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"{server.address}: UNAVAILABLE: ")
    finally:
        assert server.stop() == 0


def test_the_probe_answers_over_a_unix_socket(tmp_path: Path) -> None:
    """The compose file's HEALTHCHECK: the probe on the sidecar's unix socket."""
    server = ServerProcess(tmp_path, "sqlite")
    server.address = f"unix:{tmp_path / 'lockservice.sock'}"
    server.launch()
    try:
        assert server.process is not None
        wait_until_serving(server.address, server.process)
        probe = [sys.executable, "-I", "-m", "lockservice.probe", server.address]
        passed = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
        assert (passed.returncode, passed.stdout) == (0, f"{server.address}: SERVING\n")
    finally:
        assert server.stop() == 0
