// The package as a user gets it: `npm pack`, install the tarball in an empty directory (its
// dependencies from the registry), type-check the README's TypeScript example against the
// installed type declarations, and run it against a live server.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";

import { startServer } from "../live-server.js";

const run = promisify(execFile);
const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const README = readFileSync(join(PACKAGE, "..", "..", "README.md"), "utf8");
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const { name, version } = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8"));

let server;
let workdir;

before(async () => {
  server = await startServer();
  workdir = mkdtempSync(join(tmpdir(), "lockservice-node-packed-"));
});

after(async () => {
  await server?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

function readmeExample() {
  const section = README.split("\n## Other languages\n")[1].split("\n## ")[0];
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]);
  assert.equal(blocks.length, 1);
  return blocks[0];
}

test("the packed tarball installs in an empty directory and runs the README's example", async () => {
  const { stdout: packed } = await run(NPM, ["pack", "--json", "--pack-destination", workdir], { cwd: PACKAGE });
  const [{ filename, files }] = JSON.parse(packed.slice(packed.indexOf("[")));
  const paths = files.map((file) => file.path);
  assert.equal(filename, `${name}-${version}.tgz`);
  for (const shipped of ["dist/index.js", "dist/index.d.ts", "protos/lockservice/v1/resource.proto", "protos/google/api/annotations.proto"]) {
    assert.ok(paths.includes(shipped), `${shipped} is not in the package`);
  }
  assert.deepEqual(
    paths.filter((path) => path.startsWith("src/") || path.startsWith("test/") || path.startsWith("node_modules/")),
    [],
  );

  const app = join(workdir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "packed-app", private: true, type: "module" }));
  await run(NPM, ["install", "--no-audit", "--no-fund", join(workdir, filename)], { cwd: app });
  writeFileSync(join(app, "example.ts"), readmeExample());
  // Type-check and compile against the installed package's declarations only (this package's
  // own TypeScript and Node types, pointed at from outside the app).
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        typeRoots: [join(PACKAGE, "node_modules", "@types")],
        types: ["node"],
      },
      files: ["example.ts"],
    }),
  );
  await run(process.execPath, [join(PACKAGE, "node_modules", "typescript", "bin", "tsc"), "-p", app], { cwd: app });
  const { stdout } = await run(process.execPath, [join(app, "example.js")], {
    cwd: app,
    env: { ...process.env, LOCKSERVICE_TARGET: server.target },
    timeout: 30_000,
  });
  assert.equal(stdout, "version 1 written under token 1\nVERSION_MISMATCH current version 1n\n");
});
