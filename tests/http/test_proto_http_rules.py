"""The protos' `google.api.http` rules name exactly the HTTP adapter's routes.

A transcoder (Envoy, grpc-gateway) built from the protos then serves the paths and verbs this
adapter serves; a route added to one and not the other fails here.
"""

from __future__ import annotations

import re

# googleapis-common-protos ships no py.typed marker (its google.rpc is exempt in pyproject.toml).
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf.descriptor import MethodDescriptor

from lockservice.v1 import lease_pb2, lock_pb2, resource_pb2
from tests.http.support import app_operations

SERVICES = (
    resource_pb2.DESCRIPTOR.services_by_name["ResourceService"],
    lease_pb2.DESCRIPTOR.services_by_name["LeaseService"],
    lock_pb2.DESCRIPTOR.services_by_name["LockService"],
)
# Adapter routes that are not an RPC: the adapter's own document.
NOT_RPCS = {("GET", "/v1/openapi.json")}
# `{key=**}` in a rule is the adapter's `{key}` (a Starlette `path` parameter: slashes allowed).
_VARIABLE = re.compile(r"\{(\w+)(=[^}]*)?\}")


def _rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    return options.Extensions[annotations_pb2.http]


def _rules() -> dict[str, tuple[str, str, str]]:
    """`Service.Method` -> (VERB, path template, body) of every annotated method."""
    rules = {}
    for service in SERVICES:
        for method in service.methods:
            rule = _rule(method)
            if rule is None:
                continue
            verb = rule.WhichOneof("pattern")
            assert verb is not None
            rules[f"{service.name}.{method.name}"] = (verb.upper(), getattr(rule, verb), rule.body)
    return rules


def test_every_rule_is_the_adapters_route_for_that_method() -> None:
    assert _rules() == {
        "ResourceService.CreateResource": ("PUT", "/v1/resources/{key=**}", "value"),
        "ResourceService.GetResource": ("GET", "/v1/resources/{key=**}", ""),
        "ResourceService.UpdateResource": ("PUT", "/v1/resources/{key=**}", "value"),
        "ResourceService.DeleteResource": ("DELETE", "/v1/resources/{key=**}", ""),
        "ResourceService.ListResources": ("GET", "/v1/resources", ""),
        "ResourceService.ListResourceVersions": ("GET", "/v1/resources/{key=**}/versions", ""),
        "ResourceService.CompareAndSet": ("POST", "/v1/resources/{key=**}:compareAndSet", "*"),
        "ResourceService.Transact": ("POST", "/v1/resources:transact", "*"),
        "ResourceService.Watch": ("GET", "/v1/resources:watch", ""),
        "LeaseService.GrantLease": ("POST", "/v1/leases", "*"),
        "LeaseService.RefreshLease": ("POST", "/v1/leases/{lease_id}:refresh", "*"),
        "LeaseService.RevokeLease": ("POST", "/v1/leases/{lease_id}:revoke", "*"),
        "LeaseService.GetLease": ("GET", "/v1/leases/{lease_id}", ""),
        "LeaseService.ListLeases": ("GET", "/v1/leases", ""),
        "LockService.AcquireLock": ("POST", "/v1/locks/{name=**}:acquire", "*"),
        "LockService.ReleaseLock": ("POST", "/v1/locks/{name=**}:release", "*"),
        "LockService.GetLock": ("GET", "/v1/locks/{name=**}", ""),
        "LockService.ListLocks": ("GET", "/v1/locks", ""),
    }


def test_the_rules_cover_every_adapter_route_and_no_other() -> None:
    annotated = {(verb, _VARIABLE.sub(r"{\1}", path)) for verb, path, _ in _rules().values()}
    routed = {(verb, path) for verb, path in app_operations() if path.startswith("/v1/")} - NOT_RPCS
    assert annotated == routed


def test_only_the_bidirectional_keep_alive_has_no_rule() -> None:
    unannotated = {
        f"{service.name}.{method.name}"
        for service in SERVICES
        for method in service.methods
        if _rule(method) is None
    }
    assert unannotated == {"LeaseService.KeepAlive"}
