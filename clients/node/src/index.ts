// lockservice-client: a typed Node.js client of lockservice, generated from its protos.

export { type ConnectOptions, DEFAULT_TARGET, type LockserviceClient, connect } from "./client.js";
export { ConflictError, DOMAIN, LockLostError, LockserviceError, type Reason, isReason, toLockserviceError } from "./errors.js";
export { HeldLock, type LockOptions } from "./lock.js";
export { newRequestId } from "./request-id.js";
export { Code } from "@connectrpc/connect";
export * from "./gen/lockservice/v1/errors_pb.js";
export * from "./gen/lockservice/v1/lease_pb.js";
export * from "./gen/lockservice/v1/lock_pb.js";
export * from "./gen/lockservice/v1/resource_pb.js";
