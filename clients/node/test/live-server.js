// Starts a real `lockservice serve` on a free loopback port for the tests (or uses the server at
// LOCKSERVICE_TARGET when set). The executable is LOCKSERVICE_BIN, else the repository's
// .venv/bin/lockservice (`make test` creates it).

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { LockserviceError, connect } from "../dist/index.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const READY_TIMEOUT_MS = 20_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function waitUntilServing(target, child, logPath, clientOptions) {
  const clients = connect(target, clientOptions);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`server exited with ${child.exitCode}:\n${readFileSync(logPath, "utf8")}`);
      }
      try {
        await clients.resources.getResource({ key: "node-test/ready-probe" }, { timeoutMs: 1000 });
        return;
      } catch (error) {
        // RESOURCE_NOT_FOUND answers from a serving server; anything else means not up yet.
        if (error instanceof LockserviceError && error.reason !== "") return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`server not ready after ${READY_TIMEOUT_MS} ms:\n${readFileSync(logPath, "utf8")}`);
  } finally {
    clients.close();
  }
}

/**
 * Resolves with `{target, stop}`; `stop()` ends the server and removes its files. `serveArgs` are
 * added to `lockservice serve`; `clientOptions` are the `connect()` options that reach it. `own`
 * starts a server even when LOCKSERVICE_TARGET names one (for a test that stops it).
 */
export async function startServer({ serveArgs = [], clientOptions = {}, own = false } = {}) {
  if (process.env.LOCKSERVICE_TARGET && !own && serveArgs.length === 0) {
    return { target: process.env.LOCKSERVICE_TARGET, stop: async () => {} };
  }
  const executable = process.env.LOCKSERVICE_BIN || join(REPO, ".venv", "bin", "lockservice");
  const workdir = mkdtempSync(join(tmpdir(), "lockservice-node-test-"));
  const logPath = join(workdir, "server.log");
  const target = `127.0.0.1:${await freePort()}`;
  const log = openSync(logPath, "a");
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("LOCKSERVICE_")));
  const child = spawn(
    executable,
    ["serve", "--listen", target, "--db", join(workdir, "lockservice.db"), "--log-format", "json", ...serveArgs],
    { stdio: ["ignore", log, log], env },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    await waitUntilServing(target, child, logPath, clientOptions);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return {
    target,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
      rmSync(workdir, { recursive: true, force: true });
    },
  };
}
