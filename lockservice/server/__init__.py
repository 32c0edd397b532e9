"""The server process: `startup` assembles it (store, core, gRPC services, ports, in-process
HTTP adapter) and tears it down in one order; `local_http` is the in-process HTTP adapter.

    from lockservice.server.startup import serve

The only place that picks a store backend and the only one that joins gRPC with HTTP. Importing
this package imports nothing else.
"""

__all__: list[str] = []
