// A Node.js client of lockservice, built from the repository's protos/ at load time with the
// standard npm gRPC tooling: @grpc/proto-loader turns the .proto files into service definitions
// for @grpc/grpc-js, and protobufjs decodes the rich error details (google.rpc.Status with
// google.rpc.ErrorInfo and lockservice.v1.ConflictDetail) that every failure carries.

import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { getProtoPath } from "google-proto-files";
import protobuf from "protobufjs";

export const PROTOS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "protos");
const GOOGLE_PROTOS_DIR = join(getProtoPath("rpc", "status.proto"), "..", "..", "..");
export const DEFAULT_TARGET = "127.0.0.1:50051";
export const DEFAULT_TIMEOUT_MS = 10_000;

// Versions, revisions and fencing tokens stay far below 2^53, so int64 fields load as numbers.
const LOADER_OPTIONS = {
  includeDirs: [PROTOS_DIR],
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

// The channel retries UNAVAILABLE (gRFC A6) by resending the same request, request_id included,
// so the server applies a retried write once.
const SERVICE_CONFIG = JSON.stringify({
  methodConfig: [
    {
      name: ["ResourceService", "LeaseService", "LockService"].map((name) => ({
        service: `lockservice.v1.${name}`,
      })),
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: "0.1s",
        maxBackoff: "2s",
        backoffMultiplier: 2,
        retryableStatusCodes: ["UNAVAILABLE"],
      },
    },
  ],
});

const packageDefinition = protoLoader.loadSync(
  ["lockservice/v1/resource.proto", "lockservice/v1/lease.proto", "lockservice/v1/lock.proto"],
  LOADER_OPTIONS,
);
const v1 = grpc.loadPackageDefinition(packageDefinition).lockservice.v1;

const detailTypes = (() => {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of [PROTOS_DIR, GOOGLE_PROTOS_DIR]) {
      if (existsSync(join(dir, target))) return join(dir, target);
    }
    return target; // google/protobuf/*.proto: built into protobufjs
  };
  root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto", "lockservice/v1/errors.proto"]);
  return {
    status: root.lookupType("google.rpc.Status"),
    errorInfo: root.lookupType("google.rpc.ErrorInfo"),
    conflictDetail: root.lookupType("lockservice.v1.ConflictDetail"),
  };
})();

/** A new AIP-155 request id: one per logical write, reused by the channel's own retries. */
export function newRequestId() {
  return randomUUID();
}

/**
 * The stubs of the three services on one channel to `target` (LOCKSERVICE_TARGET, else
 * 127.0.0.1:50051). Pass `grpc.credentials.createSsl(...)` for TLS.
 */
export function connect(target = process.env.LOCKSERVICE_TARGET || DEFAULT_TARGET, credentials = undefined) {
  const channelCredentials = credentials ?? grpc.credentials.createInsecure();
  const options = { "grpc.service_config": SERVICE_CONFIG, "grpc.enable_retries": 1 };
  const resources = new v1.ResourceService(target, channelCredentials, options);
  const channelOverride = resources.getChannel();
  const shared = { ...options, channelOverride };
  return {
    resources,
    leases: new v1.LeaseService(target, channelCredentials, shared),
    locks: new v1.LockService(target, channelCredentials, shared),
    close() {
      resources.close();
    },
  };
}

/**
 * The rich details of a failed call: `{code, message, reason, domain, metadata, conflict}`, where
 * `conflict` is the decoded lockservice.v1.ConflictDetail (or null) and `reason` is "" when the
 * failure never reached a lockservice server.
 */
export function decodeError(error) {
  const decoded = { code: error.code, message: error.details ?? "", reason: "", domain: "", metadata: {}, conflict: null };
  const [bytes] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!bytes) return decoded;
  const status = detailTypes.status.decode(bytes);
  decoded.message = status.message;
  for (const detail of status.details) {
    // google.protobuf.Any is built into protobufjs with its proto field names (type_url).
    const typeName = detail.type_url.slice(detail.type_url.lastIndexOf("/") + 1);
    if (typeName === "google.rpc.ErrorInfo") {
      const info = detailTypes.errorInfo.toObject(detailTypes.errorInfo.decode(detail.value), { defaults: true });
      Object.assign(decoded, { reason: info.reason, domain: info.domain, metadata: info.metadata });
    } else if (typeName === "lockservice.v1.ConflictDetail") {
      decoded.conflict = detailTypes.conflictDetail.toObject(detailTypes.conflictDetail.decode(detail.value), {
        longs: Number,
        defaults: true,
      });
    }
  }
  return decoded;
}

/** Calls a unary `method` of `stub` with a deadline; resolves with the answer, rejects with the error
 * and its decoded details in `error.lockservice`. */
export function call(stub, method, request, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    stub[method](request, { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) {
        try {
          error.lockservice = decodeError(error);
        } catch (undecodable) {
          reject(undecodable);
          return;
        }
        reject(error);
      } else {
        resolve(response);
      }
    });
  });
}

export const status = grpc.status;
