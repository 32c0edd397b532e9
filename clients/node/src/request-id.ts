import { randomUUID } from "node:crypto";

/** A new AIP-155 request id: one per logical write; reuse it when retrying that write. */
export function newRequestId(): string {
  return randomUUID();
}
