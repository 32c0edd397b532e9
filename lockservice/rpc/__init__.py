"""gRPC adapters: servicers that translate and delegate, and the one error -> status mapping.

    resources.py, leases.py, locks.py   one servicer per service
    services.py                         the services added to a server
    convert.py, decoding.py             request <-> model conversion, tolerant parsing
    status.py                           the status codec (domain error <-> google.rpc.Status)
    calls.py, auth.py, permissions.py,  what every call goes through
    metrics.py, lifecycle.py, tls.py

Importing this package imports nothing else: the server is assembled by `lockservice.server`,
and a client that only decodes statuses (`lockservice.rpc.status`) loads no server stack.
"""

__all__: list[str] = []
