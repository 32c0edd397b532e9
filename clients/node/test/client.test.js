// The client against a live `lockservice serve`: typed answers, typed errors with the decoded
// ErrorInfo and ConflictDetail (unary and streaming calls), and the lock helper's fencing,
// keep-alive and loss detection.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { after, before, test } from "node:test";

import { timestampMs } from "@bufbuild/protobuf/wkt";

import {
  Code,
  ConflictError,
  LockLostError,
  LockserviceError,
  WatchEvent_EventType,
  connect,
  isReason,
  newRequestId,
} from "../dist/index.js";
import { startServer } from "./live-server.js";

const POLL_LIMIT_MS = 20_000;
let server;
let client;
const prefix = `node-${randomUUID().slice(0, 8)}`;
const bytes = (text) => new TextEncoder().encode(text);
const text = (value) => new TextDecoder().decode(value);

before(async () => {
  server = await startServer();
  client = connect(server.target);
});

after(async () => {
  client?.close();
  await server?.stop();
});

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the call succeeded");
}

/** Polls `probe` until it returns a truthy value (bounded), and returns that value. */
async function eventually(probe) {
  const deadline = Date.now() + POLL_LIMIT_MS;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) assert.fail("the condition never held");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("create answers the resource at version 1, typed", async () => {
  const created = await client.resources.createResource({
    key: `${prefix}/created`,
    value: bytes("v1"),
    contentType: "text/plain",
    requestId: newRequestId(),
  });
  assert.equal(created.key, `${prefix}/created`);
  assert.equal(created.version, 1n);
  assert.equal(text(created.value), "v1");
  assert.equal(created.contentType, "text/plain");
});

test("a conflicting create is a ConflictError with ErrorInfo and ConflictDetail decoded", async () => {
  const key = `${prefix}/exists`;
  const created = await client.resources.createResource({ key, value: bytes("v1") });
  const error = await rejection(client.resources.createResource({ key, value: bytes("v2") }));
  assert.ok(error instanceof ConflictError);
  assert.ok(error instanceof LockserviceError);
  assert.equal(error.code, Code.AlreadyExists);
  assert.equal(error.codeName, "ALREADY_EXISTS");
  assert.equal(error.message, `${key} already exists at version 1`);
  assert.equal(error.reason, "RESOURCE_EXISTS");
  assert.equal(error.domain, "lockservice");
  assert.deepEqual(error.metadata, { key, current_version: "1" });
  assert.equal(error.conflict.key, key);
  assert.equal(error.conflict.exists, true);
  assert.equal(error.conflict.currentVersion, 1n);
  assert.equal(error.conflict.currentEtag, created.etag);
  assert.equal(error.conflict.currentModRevision, created.modRevision);
  assert.equal(error.conflict.expected, "absent");
  assert.equal(text(error.conflict.currentValue), "v1");
});

test("a stale update is ABORTED / VERSION_MISMATCH with the current version", async () => {
  const key = `${prefix}/stale`;
  await client.resources.createResource({ key, value: bytes("v1") });
  const updated = await client.resources.updateResource({ key, value: bytes("v2"), expectedVersion: 1n });
  assert.equal(updated.version, 2n);
  const error = await rejection(client.resources.updateResource({ key, value: bytes("v3"), expectedVersion: 1n }));
  assert.ok(error instanceof ConflictError);
  assert.equal(error.code, Code.Aborted);
  assert.ok(isReason(error, "VERSION_MISMATCH"));
  assert.equal(error.message, `${key} is at version 2, not at the expected version 1`);
  assert.equal(error.conflict.currentVersion, 2n);
  assert.equal(error.conflict.currentEtag, updated.etag);
  assert.equal(error.conflict.expected, "version 1");
});

test("a missing key is a LockserviceError without a conflict", async () => {
  const error = await rejection(client.resources.getResource({ key: `${prefix}/missing` }));
  assert.ok(error instanceof LockserviceError);
  assert.ok(!(error instanceof ConflictError));
  assert.equal(error.code, Code.NotFound);
  assert.equal(error.reason, "RESOURCE_NOT_FOUND");
  assert.equal(error.conflict, undefined);
});

test("a failing stream rejects with a typed error too", async () => {
  const stream = client.resources.watch({ key: "/not-a-key" }, { timeoutMs: 0 });
  const error = await rejection((async () => {
    for await (const _ of stream) assert.fail("an event on an invalid key");
  })());
  assert.ok(error instanceof LockserviceError);
  assert.equal(error.code, Code.InvalidArgument);
  assert.equal(error.reason, "INVALID_KEY");
});

test("a watch streams typed events", async () => {
  const key = `${prefix}/watched`;
  const created = await client.resources.createResource({ key, value: bytes("v1") });
  const stream = client.resources.watch({ key, startRevision: created.modRevision }, { timeoutMs: 0 });
  for await (const response of stream) {
    if (response.events.length === 0) continue; // the stream's first answer: "established at revision N"
    assert.equal(response.events.length, 1);
    const [event] = response.events;
    assert.equal(event.type, WatchEvent_EventType.PUT);
    assert.equal(event.resource.key, key);
    assert.equal(event.revision, created.modRevision);
    break;
  }
});

test("lock(): the holder's fence writes; a second holder is refused, then fenced out the first", async () => {
  const name = `${prefix}/lock`;
  const key = `${prefix}/guarded`;
  const first = await client.lock(name, { ttlSeconds: 30, holder: "node-first" });
  assert.equal(first.name, name);
  assert.equal(first.acquired.holder, "node-first");
  assert.equal(first.fence.lockName, name);
  assert.equal(first.fence.token, first.token);
  await client.resources.updateResource({ key, value: bytes("first"), allowMissing: true, fence: first.fence });

  const held = await rejection(client.lock(name, { ttlSeconds: 30, holder: "node-second" }));
  assert.ok(held instanceof ConflictError);
  assert.equal(held.reason, "LOCK_HELD");
  assert.equal(held.conflict.holder, "node-first");
  assert.equal(held.conflict.currentToken, first.token);
  assert.equal(held.conflict.leaseId, first.leaseId);

  await first.release();
  const lease = await rejection(client.leases.getLease({ leaseId: first.leaseId }));
  assert.equal(lease.reason, "LEASE_NOT_FOUND"); // release revokes the lock's own lease
  const second = await client.lock(name, { ttlSeconds: 30, holder: "node-second" });
  assert.equal(second.token, first.token + 1n);
  const stale = await rejection(
    client.resources.updateResource({ key, value: bytes("late"), allowMissing: true, fence: first.fence }),
  );
  assert.equal(stale.code, Code.Aborted);
  assert.equal(stale.reason, "STALE_FENCE");
  await second.release();
});

test("lock() with waitMs queues until the holder releases", async () => {
  const name = `${prefix}/queued`;
  const first = await client.lock(name, { ttlSeconds: 30 });
  const waiting = client.lock(name, { ttlSeconds: 30, waitMs: 15_000, holder: "node-waiter" });
  await eventually(async () => (await client.locks.getLock({ name })).waiters === 1);
  await first.release();
  const second = await waiting;
  assert.equal(second.acquired.holder, "node-waiter");
  assert.equal(second.token, first.token + 1n);
  await second.release();
});

test("the lease is kept alive past its TTL while the lock is held", async () => {
  const lock = await client.lock(`${prefix}/kept`, { ttlSeconds: 1 });
  const granted = await client.leases.getLease({ leaseId: lock.leaseId });
  // Three refreshes (one per third of the TTL) push the expiry past the first TTL's end.
  const firstExpiry = timestampMs(granted.expireTime);
  await eventually(async () => {
    const lease = await client.leases.getLease({ leaseId: lock.leaseId });
    return timestampMs(lease.expireTime) > firstExpiry + 1000;
  });
  assert.equal(lock.lost, false);
  await lock.release();
});

test("a lock whose lease is gone is lost: onLost runs, signal aborts, withLock rejects", async () => {
  const name = `${prefix}/lost`;
  let lostWith;
  const result = await rejection(
    client.withLock(name, { ttlSeconds: 3, onLost: (lock, cause) => (lostWith = { lock, cause }) }, async (lock) => {
      await client.leases.revokeLease({ leaseId: lock.leaseId });
      await once(lock.signal, "abort");
      assert.equal(lock.lost, true);
      assert.throws(() => lock.check(), LockLostError);
      return "done";
    }),
  );
  assert.ok(result instanceof LockLostError);
  assert.equal(result.lockName, name);
  assert.ok(lostWith.cause instanceof LockserviceError);
  assert.equal(lostWith.cause.reason, "LEASE_NOT_FOUND");
  assert.equal(lostWith.lock.token, result.token);
});

test("withLock answers the work's result and releases the lock", async () => {
  const name = `${prefix}/with`;
  const answer = await client.withLock(name, { ttlSeconds: 30 }, async (lock) => {
    const current = await client.locks.getLock({ name });
    assert.equal(current.held, true);
    assert.equal(current.token, lock.token);
    return 42;
  });
  assert.equal(answer, 42);
  assert.equal((await client.locks.getLock({ name })).held, false);
});

test("a lock whose server is gone is lost once its lease would have expired", async () => {
  const own = await startServer({ own: true });
  const ownClient = connect(own.target);
  try {
    let lostCause;
    const lock = await ownClient.lock(`${prefix}/unreachable`, { ttlSeconds: 2, onLost: (_, cause) => (lostCause = cause) });
    await own.stop();
    await once(lock.signal, "abort");
    assert.ok(lock.signal.reason instanceof LockLostError);
    assert.ok(lostCause instanceof LockserviceError);
    // Refused connections after the exit; a refresh during the drain may be told SHUTTING_DOWN.
    assert.equal(lostCause.code, Code.Unavailable);
    assert.ok(["", "SHUTTING_DOWN"].includes(lostCause.reason), lostCause.reason);
    await lock.release(); // nothing to release: the lease is gone with the lock
  } finally {
    ownClient.close();
    await own.stop();
  }
});
