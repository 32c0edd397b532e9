"""Every rule of lockservice, one home per concept. No gRPC, no protobuf, no SQL here.

- `locks/`: locks (acquire, queue, hand-over, fencing, views, the lock-expiry rule);
- `leases/`: leases (grant, end, the lease-expiry rule);
- `resources`: versioned resources, one key per call; `transactions`: several keys at once;
  `versions`: the version rule and the expectations both share;
- `watch`: the change-event fan-out; `expiry`: the task that ends leases and lock-delays;
- `idempotency`: request ids, and `write_once`, the write every mutation goes through;
- `requests`: the request dataclass of each call into the core (the adapters build them);
- `access`, `ownership`, `visibility`: who may do what, own which lease, and see which detail;
- `limits`, `quotas`, `memory`, `validation`, `pagination`: bounds, and the checks of input.

Importing this package loads none of them: import the module you need.
"""
