// Failures as typed errors: every failed call rejects with a LockserviceError carrying the
// google.rpc.Status details the server sends in the `grpc-status-details-bin` trailer (the
// ErrorInfo reason, and for conflicts the lockservice.v1.ConflictDetail with the current state).

import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { type ConflictDetail, ConflictDetailSchema, type ErrorReason } from "./gen/lockservice/v1/errors_pb.js";

/** A reason the server sends: the name of a lockservice.v1.ErrorReason value. */
export type Reason = Exclude<keyof typeof ErrorReason, number | "ERROR_REASON_UNSPECIFIED">;

/** The domain of every ErrorInfo a lockservice server sends. */
export const DOMAIN = "lockservice";

/**
 * A failed call. `code` is the gRPC status code (Connect's `Code`, numbered as gRPC's); `reason`,
 * `domain` and `metadata` come from the `google.rpc.ErrorInfo` detail; `reason` is "" when the
 * failure never reached a lockservice server (a network error, a deadline). `conflict` is the
 * decoded `lockservice.v1.ConflictDetail` when the server sent one.
 */
export class LockserviceError extends Error {
  readonly code: Code;
  /** A `Reason`; any other string is a reason newer than this client ("" when none). */
  readonly reason: Reason | (string & {});
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly conflict: ConflictDetail | undefined;

  constructor(error: ConnectError) {
    super(error.rawMessage, { cause: error });
    this.name = new.target.name;
    this.code = error.code;
    const [info] = error.findDetails(ErrorInfoSchema);
    this.reason = info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.metadata = info?.metadata ?? {};
    this.conflict = error.findDetails(ConflictDetailSchema)[0];
  }

  /** The status code's name, as gRPC spells it ("ABORTED"). */
  get codeName(): string {
    return Code[this.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  }
}

/**
 * A failure that carries the current state it conflicted with (every ABORTED and ALREADY_EXISTS,
 * and NOT_FOUND on a missing version): `conflict` is always set. Re-read, merge and retry from it.
 */
export class ConflictError extends LockserviceError {
  declare readonly conflict: ConflictDetail;
}

/** The lock `lockName` held with `token` was lost: its lease could not be kept alive. */
export class LockLostError extends Error {
  constructor(
    readonly lockName: string,
    readonly token: bigint,
    cause: unknown,
  ) {
    super(`lock ${lockName} (token ${token}) was lost: its lease could not be kept alive`, { cause });
    this.name = "LockLostError";
  }
}

/** `error` as a LockserviceError (a ConflictError when it carries a ConflictDetail). */
export function toLockserviceError(error: unknown): LockserviceError {
  if (error instanceof LockserviceError) return error;
  const connectError = ConnectError.from(error);
  const hasConflict = connectError.findDetails(ConflictDetailSchema).length > 0;
  return hasConflict ? new ConflictError(connectError) : new LockserviceError(connectError);
}

/** True when `error` is a lockservice failure with `reason`. */
export function isReason(error: unknown, reason: Reason): error is LockserviceError {
  return error instanceof LockserviceError && error.reason === reason;
}
