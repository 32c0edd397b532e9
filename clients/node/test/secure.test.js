// connect() over TLS with a bearer token, against a live server started with --tls-cert,
// --tls-key and --auth-tokens (a self-signed certificate for 127.0.0.1 made with openssl).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Code, LockserviceError, connect } from "../dist/index.js";
import { startServer } from "./live-server.js";

const TOKEN = "node-test-token-0123456789abcdef";
let workdir;
let ca;
let server;

before(async () => {
  workdir = mkdtempSync(join(tmpdir(), "lockservice-node-tls-"));
  const [cert, key, tokens] = ["cert.pem", "key.pem", "tokens"].map((name) => join(workdir, name));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
  ], { stdio: "ignore" });
  writeFileSync(tokens, `alice ${TOKEN}\n`);
  ca = readFileSync(cert);
  server = await startServer({
    serveArgs: ["--tls-cert", cert, "--tls-key", key, "--auth-tokens", tokens],
    clientOptions: { tls: true, nodeOptions: { ca }, token: TOKEN },
  });
});

after(async () => {
  await server?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the call succeeded");
}

test("a client with the CA and the token is served over TLS", async () => {
  const client = connect(server.target, { tls: true, nodeOptions: { ca }, token: TOKEN });
  try {
    const created = await client.resources.createResource({ key: "node-tls/ok", value: new Uint8Array([1]) });
    assert.equal(created.version, 1n);
  } finally {
    client.close();
  }
});

test("a client without the token is UNAUTHENTICATED", async () => {
  const client = connect(server.target, { tls: true, nodeOptions: { ca } });
  try {
    const error = await rejection(client.resources.getResource({ key: "node-tls/ok" }));
    assert.ok(error instanceof LockserviceError);
    assert.equal(error.code, Code.Unauthenticated);
    assert.equal(error.reason, "UNAUTHENTICATED");
  } finally {
    client.close();
  }
});

test("a client that does not trust the certificate never reaches the server", async () => {
  const client = connect(server.target, { tls: true, token: TOKEN });
  try {
    const error = await rejection(client.resources.getResource({ key: "node-tls/ok" }));
    assert.ok(error instanceof LockserviceError);
    // Connect's Node transport reports a failed TLS handshake as INTERNAL (not UNAVAILABLE).
    assert.equal(error.code, Code.Internal);
    assert.equal(error.reason, "");
    assert.equal(error.message, "self-signed certificate");
  } finally {
    client.close();
  }
});
