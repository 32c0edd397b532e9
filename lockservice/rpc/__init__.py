"""gRPC adapters: servicers that translate and delegate, and the one error -> status mapping."""

from lockservice.rpc.server import SERVICE_NAMES, serve

__all__ = ["SERVICE_NAMES", "serve"]
