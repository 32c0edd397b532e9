// The Node.js client against a live server: create, conflicting create (ALREADY_EXISTS with its
// details decoded), stale update (ABORTED with the current version), and lock contention.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { call, connect, newRequestId, status } from "../src/client.js";
import { startServer } from "./live-server.js";

let server;
let clients;
const prefix = `node-${randomUUID().slice(0, 8)}`;

before(async () => {
  server = await startServer();
  clients = connect(server.target);
});

after(async () => {
  clients?.close();
  await server?.stop();
});

async function failure(promise) {
  await assert.rejects(promise);
  try {
    await promise;
  } catch (error) {
    return error.lockservice;
  }
  throw new Error("unreachable");
}

test("create answers the resource at version 1", async () => {
  const created = await call(clients.resources, "CreateResource", {
    key: `${prefix}/created`,
    value: Buffer.from("v1"),
    contentType: "text/plain",
    requestId: newRequestId(),
  });
  assert.equal(created.key, `${prefix}/created`);
  assert.equal(created.version, 1);
  assert.equal(created.value.toString(), "v1");
  assert.equal(created.contentType, "text/plain");
});

test("a conflicting create is ALREADY_EXISTS with the current state decoded", async () => {
  const key = `${prefix}/exists`;
  const created = await call(clients.resources, "CreateResource", { key, value: Buffer.from("v1") });
  const error = await failure(call(clients.resources, "CreateResource", { key, value: Buffer.from("v2") }));
  assert.equal(error.code, status.ALREADY_EXISTS);
  assert.equal(error.message, `${key} already exists at version 1`);
  assert.equal(error.reason, "RESOURCE_EXISTS");
  assert.equal(error.domain, "lockservice");
  assert.deepEqual(error.metadata, { key, current_version: "1" });
  assert.equal(error.conflict.key, key);
  assert.equal(error.conflict.exists, true);
  assert.equal(error.conflict.currentVersion, 1);
  assert.equal(error.conflict.currentEtag, created.etag);
  assert.equal(error.conflict.currentModRevision, created.modRevision);
  assert.equal(error.conflict.expected, "absent");
});

test("a stale update is ABORTED with the current version", async () => {
  const key = `${prefix}/stale`;
  await call(clients.resources, "CreateResource", { key, value: Buffer.from("v1") });
  const updated = await call(clients.resources, "UpdateResource", {
    key,
    value: Buffer.from("v2"),
    expectedVersion: 1,
    requestId: newRequestId(),
  });
  assert.equal(updated.version, 2);
  const error = await failure(
    call(clients.resources, "UpdateResource", { key, value: Buffer.from("v3"), expectedVersion: 1 }),
  );
  assert.equal(error.code, status.ABORTED);
  assert.equal(error.reason, "VERSION_MISMATCH");
  assert.equal(error.message, `${key} is at version 2, not at the expected version 1`);
  assert.equal(error.conflict.currentVersion, 2);
  assert.equal(error.conflict.currentEtag, updated.etag);
  assert.equal(error.conflict.expected, "version 1");
});

test("lock contention: LOCK_HELD names the holder, a queued waiter gets the next token", async () => {
  const name = `${prefix}/lock`;
  const first = await call(clients.locks, "AcquireLock", { name, ttlSeconds: 30, holder: "node-first" });
  assert.equal(first.held, true);
  assert.equal(first.holder, "node-first");

  const error = await failure(call(clients.locks, "AcquireLock", { name, ttlSeconds: 30, holder: "node-second" }));
  assert.equal(error.code, status.ABORTED);
  assert.equal(error.reason, "LOCK_HELD");
  assert.equal(error.conflict.holder, "node-first");
  assert.equal(error.conflict.currentToken, first.token);
  assert.equal(error.conflict.leaseId, first.leaseId);

  const waiting = call(
    clients.locks,
    "AcquireLock",
    { name, ttlSeconds: 30, holder: "node-second", waitTimeout: { seconds: 10 } },
    { timeoutMs: 20_000 },
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  const released = await call(clients.locks, "ReleaseLock", { name, token: first.token, requestId: newRequestId() });
  const second = await waiting;
  assert.equal(second.holder, "node-second");
  assert.equal(second.token, first.token + 1);
  assert.equal(released.lock.holder, "node-second");

  const stale = await failure(call(clients.locks, "ReleaseLock", { name, token: first.token }));
  assert.equal(stale.code, status.ABORTED);
  assert.equal(stale.reason, "LOCK_NOT_HELD");
  assert.equal(stale.conflict.holder, "node-second");
  await call(clients.leases, "RevokeLease", { leaseId: second.leaseId });
});
