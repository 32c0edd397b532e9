// The three services on one HTTP/2 connection, with every failure translated to a typed
// LockserviceError (see errors.ts) and the lock helper (see lock.ts).

import type { SecureClientSessionOptions } from "node:http2";

import { type Client, type Interceptor, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { toLockserviceError } from "./errors.js";
import { LeaseService } from "./gen/lockservice/v1/lease_pb.js";
import { LockService } from "./gen/lockservice/v1/lock_pb.js";
import { ResourceService } from "./gen/lockservice/v1/resource_pb.js";
import { type HeldLock, type LockOptions, acquireLock, withLock } from "./lock.js";

/** The server `connect()` talks to when given none and LOCKSERVICE_TARGET is unset. */
export const DEFAULT_TARGET = "127.0.0.1:50051";

/** How `connect()` reaches the server. */
export interface ConnectOptions {
  /** Use TLS (`https`). Default false. */
  tls?: boolean;
  /** HTTP/2 session options, e.g. `{ca, cert, key}` for TLS with a private CA or client certificates. */
  nodeOptions?: SecureClientSessionOptions;
  /** A bearer token sent as `authorization` metadata on every call. */
  token?: string;
  /** The default deadline of each call, in milliseconds (a call's own `timeoutMs` overrides it). */
  timeoutMs?: number;
}

/** The services' typed clients on one connection; every failed call rejects with a LockserviceError. */
export interface LockserviceClient {
  readonly resources: Client<typeof ResourceService>;
  readonly leases: Client<typeof LeaseService>;
  readonly locks: Client<typeof LockService>;
  /** Acquires lock `name` under a new lease that is kept alive until `release()` (see HeldLock). */
  lock(name: string, options?: LockOptions): Promise<HeldLock>;
  /** Runs `work` holding lock `name`, then releases it; rejects with LockLostError if the lock was
   * lost meanwhile (unless `work` rejected first). */
  withLock<T>(name: string, options: LockOptions, work: (lock: HeldLock) => Promise<T>): Promise<T>;
  /** Closes the connection; calls in flight fail. */
  close(): void;
}

/**
 * `client` with every failure translated to a LockserviceError: unary methods reject with it,
 * streaming methods throw it from their iterator. (A Connect interceptor cannot do this: Connect
 * re-wraps whatever an interceptor throws that is not its own ConnectError.)
 */
function translatingErrors<T extends object>(client: T): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      const method: unknown = Reflect.get(target, property, receiver);
      if (typeof method !== "function") return method;
      return (...args: unknown[]) => {
        const answer: unknown = method.apply(target, args);
        if (answer instanceof Promise) {
          return answer.catch((error: unknown) => {
            throw toLockserviceError(error);
          });
        }
        return translatingStream(answer as AsyncIterable<unknown>);
      };
    },
  });
}

async function* translatingStream<T>(stream: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* stream;
  } catch (error) {
    throw toLockserviceError(error);
  }
}

/**
 * Connects to the lockservice at `target` ("HOST:PORT"; default LOCKSERVICE_TARGET, else
 * 127.0.0.1:50051). The connection opens on the first call.
 */
export function connect(
  target: string = process.env.LOCKSERVICE_TARGET || DEFAULT_TARGET,
  options: ConnectOptions = {},
): LockserviceClient {
  const baseUrl = `${options.tls ? "https" : "http"}://${target}`;
  const sessionManager = new Http2SessionManager(baseUrl, undefined, options.nodeOptions);
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) {
    const authorization = `Bearer ${options.token}`;
    interceptors.push((next) => (request) => {
      request.header.set("authorization", authorization);
      return next(request);
    });
  }
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors,
    defaultTimeoutMs: options.timeoutMs ?? 10_000,
  });
  const client: LockserviceClient = {
    resources: translatingErrors(createClient(ResourceService, transport)),
    leases: translatingErrors(createClient(LeaseService, transport)),
    locks: translatingErrors(createClient(LockService, transport)),
    lock: (name, lockOptions = {}) => acquireLock(client, name, lockOptions),
    withLock: (name, lockOptions, work) => withLock(client, name, lockOptions, work),
    close: () => sessionManager.abort(),
  };
  return client;
}
