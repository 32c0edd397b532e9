"""Every rule of lockservice: versions, compares, transactions, idempotency, limits.

No gRPC, no protobuf, no SQL here.
"""

from lockservice.core.limits import Limits
from lockservice.core.resources import Resources

__all__ = ["Limits", "Resources"]
