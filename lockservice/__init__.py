"""lockservice: versioned resources, compare-and-set, leases and fenced locks over gRPC."""

__all__ = ["__version__"]

__version__ = "0.1.0"
