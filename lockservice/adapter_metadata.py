"""The gRPC metadata the in-process HTTP adapter and the server agree on: how the adapter, over
the server's private unix socket, passes on the identity of an HTTPS caller's verified client
certificate, with the per-process secret that vouches for it (`lockservice.server.local_http`).

Written by `lockservice.http.params`, honoured by `lockservice.rpc.auth` (on that socket only):
a module of its own so that neither adapter imports the other.
"""

__all__ = ["ADAPTER_SECRET_METADATA", "CLIENT_IDENTITY_METADATA"]

# The metadata of a call the in-process adapter makes for a caller with a client certificate.
CLIENT_IDENTITY_METADATA = "lockservice-client-identity"
ADAPTER_SECRET_METADATA = "lockservice-adapter-secret"
