"""Benchmarks: a multi-process grpc.aio load generator that drives a real `lockservice serve`
(SQLite, or PostgreSQL with N replicas) and, in the same round, a bare grpc.aio echo server (the
ceiling for any Python gRPC service). Run `python -m bench --help`; docs/performance.md has the
figures. Modules: harness (server processes, /proc CPU), loadgen (worker processes), workloads,
echo, report, matrix."""
