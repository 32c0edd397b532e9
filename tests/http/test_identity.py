"""A client certificate's identity, by gRPC's rule: the common name, else the first DNS, URI,
email or IP subject alternative name (as `ssl` decodes a verified peer certificate)."""

from __future__ import annotations

import pytest

from lockservice.http.identity import certificate_identity


@pytest.mark.parametrize(
    ("certificate", "identity"),
    [
        (None, None),
        ({}, None),
        ({"subject": ((("organizationName", "acme"),), (("commonName", "orders"),))}, "orders"),
        (
            {
                "subject": ((("organizationName", "acme"),),),
                "subjectAltName": (("DirName", "x"), ("URI", "spiffe://acme/orders"), ("DNS", "orders")),
            },
            "spiffe://acme/orders",
        ),
        ({"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:1\n"),)}, "2001:db8::1"),
        ({"subjectAltName": (("email", "ops@acme.example"),)}, "ops@acme.example"),
        ({"subject": ((("commonName", ""),),), "subjectAltName": ()}, None),
    ],
)
def test_certificate_identity(certificate: dict[str, object] | None, identity: str | None) -> None:
    assert certificate_identity(certificate) == identity
