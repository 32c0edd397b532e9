// Copies the repository's protos/ into the package (`protos/`), so a published package carries
// the contract its code was generated from (for reference, and for generating other languages).

import { cpSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), "..");
const destination = join(PACKAGE, "protos");
rmSync(destination, { recursive: true, force: true });
cpSync(join(PACKAGE, "..", "..", "protos"), destination, { recursive: true });
