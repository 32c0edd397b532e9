// The README's Node.js example runs against a live server and prints what its comment says.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";

import { startServer } from "./live-server.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const README = readFileSync(join(HERE, "..", "..", "..", "README.md"), "utf8");
const CLIENT_MODULE = pathToFileURL(join(HERE, "..", "src", "client.js")).href;

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

test("the README's Node.js example prints the decoded conflict", async () => {
  const section = README.split("\n## Other languages\n")[1].split("\n## ")[0];
  const blocks = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]);
  assert.equal(blocks.length, 1);
  const workdir = mkdtempSync(join(tmpdir(), "lockservice-node-readme-"));
  try {
    const script = join(workdir, "example.mjs");
    writeFileSync(script, blocks[0].replace("./clients/node/src/client.js", CLIENT_MODULE));
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      env: { ...process.env, LOCKSERVICE_TARGET: server.target },
      timeout: 20_000,
    });
    assert.equal(stdout, "VERSION_MISMATCH current version 1\n");
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
});
