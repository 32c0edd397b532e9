// A lock held with its fencing token, its lease kept alive by periodic RefreshLease calls.
//
// The keeper refreshes every third of the TTL, each call with a deadline that ends before the
// lease could have expired. The lease is counted from when the last successful refresh was
// *sent* (the server's deadline can only be later), so when the keeper declares the lock lost
// the server has let it go too. It is lost at once when the server answers LEASE_NOT_FOUND.

import { hostname } from "node:os";

import { type MessageInitShape, create } from "@bufbuild/protobuf";

import type { LockserviceClient } from "./client.js";
import { LockLostError, isReason } from "./errors.js";
import { type AcquireLockRequestSchema, type Fence, FenceSchema, type Lock } from "./gen/lockservice/v1/lock_pb.js";
import { newRequestId } from "./request-id.js";

/** How `lock()` / `withLock()` acquire and keep a lock. */
export interface LockOptions {
  /** The TTL of the lease created for the lock, in seconds (default 10): how long the lock
   * outlives a holder that stops keeping it alive. */
  ttlSeconds?: number;
  /** Who holds the lock, for humans and GetLock (default `HOSTNAME:PID`). */
  holder?: string;
  /** How long to queue for a held lock, in milliseconds; 0 (default) tries once and rejects with
   * a ConflictError (reason LOCK_HELD) naming the current holder. */
  waitMs?: number;
  /** Called once when the lock is lost (its lease could not be kept alive). */
  onLost?: (lock: HeldLock, cause: unknown) => void;
}

/**
 * A lock held under a lease of its own, kept alive until `release()`.
 *
 * Pass `fence` with every write the lock protects: the server refuses the write (STALE_FENCE)
 * once another holder has the lock, so a paused holder cannot overwrite its successor. The lock
 * is *lost* when its lease could not be kept alive: then `lost` is true, `signal` is aborted,
 * `check()` throws LockLostError, and `onLost` has been called.
 */
export class HeldLock {
  /** The lock's name. */
  readonly name: string;
  /** The fencing token of this acquisition: strictly greater than every earlier holder's. */
  readonly token: bigint;
  /** The lease the lock is held under (created for it, revoked by `release()`). */
  readonly leaseId: string;
  /** The lock as AcquireLock answered it. */
  readonly acquired: Lock;
  /** Aborted (with a LockLostError) when the lock is lost; pass it to work that must stop then. */
  readonly signal: AbortSignal;
  private readonly lostController = new AbortController();
  private keeper: ReturnType<typeof setTimeout> | undefined;
  private released = false;

  constructor(
    private readonly client: LockserviceClient,
    lock: Lock,
    private readonly ttlMs: number,
    private readonly onLost: LockOptions["onLost"],
  ) {
    this.name = lock.name;
    this.token = lock.token;
    this.leaseId = lock.leaseId;
    this.acquired = lock;
    this.signal = this.lostController.signal;
  }

  /** The `Fence` for a write under this lock: `{ fence: lock.fence }` in an update, delete,
   * compare-and-set or transaction. */
  get fence(): Fence {
    return create(FenceSchema, { lockName: this.name, token: this.token });
  }

  /** True once the lease could not be kept alive. */
  get lost(): boolean {
    return this.signal.aborted;
  }

  /** Throws LockLostError if the lock was lost. */
  check(): void {
    if (this.lost) throw this.signal.reason;
  }

  /** Stops keeping the lease alive, releases the lock and revokes its lease. A lost lock has
   * nothing to release: this only stops the keeper. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.keeper);
    if (this.lost) return;
    await this.client.locks.releaseLock({ name: this.name, token: this.token, requestId: newRequestId() });
    try {
      await this.client.leases.revokeLease({ leaseId: this.leaseId, requestId: newRequestId() });
    } catch (error) {
      if (!isReason(error, "LEASE_NOT_FOUND")) throw error;
    }
  }

  /** Starts the keeper; `confirmedAt` is when the acquisition was sent. */
  keepAlive(confirmedAt: number): void {
    let expiresAt = confirmedAt + this.ttlMs;
    const refresh = async (): Promise<void> => {
      if (this.released) return;
      const sentAt = Date.now();
      const remaining = expiresAt - sentAt;
      try {
        await this.client.leases.refreshLease(
          { leaseId: this.leaseId, requestId: newRequestId() },
          { timeoutMs: Math.max(1, remaining) },
        );
        expiresAt = sentAt + this.ttlMs;
        this.schedule(refresh, this.ttlMs / 3);
      } catch (error) {
        if (this.released) return;
        if (isReason(error, "LEASE_NOT_FOUND") || Date.now() >= expiresAt) {
          this.markLost(error);
          return;
        }
        // A transient failure: try again soon, well before the lease could expire.
        this.schedule(refresh, Math.min(1000, Math.max(0, expiresAt - Date.now()) / 4));
      }
    };
    this.schedule(refresh, this.ttlMs / 3);
  }

  private schedule(refresh: () => Promise<void>, delayMs: number): void {
    if (this.released) return;
    // Unreferenced: a held lock alone does not keep the process running.
    this.keeper = setTimeout(() => void refresh(), delayMs);
    this.keeper.unref();
  }

  private markLost(cause: unknown): void {
    if (this.lost) return;
    this.lostController.abort(new LockLostError(this.name, this.token, cause));
    this.onLost?.(this, cause);
  }
}

/** Acquires lock `name` under a new lease of `ttlSeconds` and starts keeping it alive. */
export async function acquireLock(client: LockserviceClient, name: string, options: LockOptions): Promise<HeldLock> {
  const ttlSeconds = options.ttlSeconds ?? 10;
  const waitMs = options.waitMs ?? 0;
  const request: MessageInitShape<typeof AcquireLockRequestSchema> = {
    name,
    lease: { case: "ttlSeconds", value: BigInt(ttlSeconds) },
    holder: options.holder ?? `${hostname()}:${process.pid}`,
    requestId: newRequestId(),
  };
  if (waitMs > 0) {
    request.waitTimeout = { seconds: BigInt(Math.floor(waitMs / 1000)), nanos: (waitMs % 1000) * 1_000_000 };
  }
  const sentAt = Date.now();
  const lock = await client.locks.acquireLock(request, waitMs > 0 ? { timeoutMs: waitMs + 10_000 } : {});
  const held = new HeldLock(client, lock, ttlSeconds * 1000, options.onLost);
  held.keepAlive(sentAt);
  return held;
}

/** Runs `work` holding lock `name`, then releases it (see LockserviceClient.withLock). */
export async function withLock<T>(
  client: LockserviceClient,
  name: string,
  options: LockOptions,
  work: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  const held = await acquireLock(client, name, options);
  let result: T;
  try {
    result = await work(held);
  } finally {
    await held.release();
  }
  held.check();
  return result;
}
