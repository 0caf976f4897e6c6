// The SDK's front door: a typed client for every operation, with the session's
// access token attached and kept fresh.
import createClient, { type Client } from "openapi-fetch";
import { Account } from "./account.js";
import type { paths } from "./schema.js";
import { Session, type PendingStorage, type SessionOptions } from "./session.js";
import type { TokenStorage } from "./storage.js";
import { defaultRetryPolicy, retrying, type Fetch, type RetryPolicy } from "./transport.js";

export interface GatehouseOptions {
  /** Where Gatehouse is, e.g. `https://auth.example.com`. */
  baseUrl: string;
  /** Where tokens are kept: `MemoryStorage` (default) or `LocalStorageStorage`. */
  storage?: TokenStorage;
  /** Sent as `client_id` at sign-in. */
  clientId?: string;
  /** Refresh this long (ms) before the access token expires (default 60 s). */
  refreshAhead?: number;
  /** Each request's deadline (`retry.deadline`, default 10 s) and how 429
   * and 503 answers are retried. */
  retry?: Partial<RetryPolicy>;
  /** The longest wait for another tab's refresh (ms, default: the deadline
   * and a second). */
  lockWait?: number;
  /** The `fetch` to send with (default: the global one). */
  fetch?: (request: Request) => Promise<Response>;
  /** The client's clock (ms since epoch). */
  now?: () => number;
  /** Names the lock and channel tabs coordinate on (default from `baseUrl`). */
  coordinationName?: string;
  /** The issuer of redirect sign-ins' answers (default `baseUrl`). */
  issuer?: string;
  /** Where a redirect sign-in waits for the browser (default `sessionStorage`). */
  pendingStorage?: PendingStorage;
}

export interface Gatehouse {
  /** Every operation, typed from the spec; protected ones carry the token. */
  api: Client<paths>;
  /** The session: sign in and out, events, tokens. */
  session: Session;
  /** Password reset, email verification and email change. */
  account: Account;
}

/** Creates a client and its session. */
export function createGatehouse(options: GatehouseOptions): Gatehouse {
  const base: Fetch = options.fetch ?? ((request) => globalThis.fetch(request));
  const send = retrying(base, { ...defaultRetryPolicy, ...options.retry });
  const sessionOptions: SessionOptions = { baseUrl: options.baseUrl, send };
  if (options.storage) sessionOptions.storage = options.storage;
  if (options.clientId !== undefined) sessionOptions.clientId = options.clientId;
  if (options.refreshAhead !== undefined) sessionOptions.refreshAhead = options.refreshAhead;
  if (options.now) sessionOptions.now = options.now;
  if (options.coordinationName) sessionOptions.coordinationName = options.coordinationName;
  if (options.issuer !== undefined) sessionOptions.issuer = options.issuer;
  sessionOptions.lockWait = options.lockWait ?? (options.retry?.deadline ?? defaultRetryPolicy.deadline) + 1_000;
  if (options.pendingStorage) sessionOptions.pendingStorage = options.pendingStorage;
  const session = new Session(sessionOptions);

  // A 401 is retried once, and only when the token it carried was stale:
  // replaced meanwhile, or refused while a refresh shows the session alive.
  const authorized = async (input: Request): Promise<Response> => {
    const token = await session.accessToken();
    if (token === null) return send(input);
    const response = await send(withToken(input, token));
    if (response.status !== 401) return response;
    const retryWith = await session.afterUnauthorized(token);
    if (retryWith === null) return response;
    await response.body?.cancel();
    return send(withToken(input, retryWith));
  };
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/$/, ""),
    fetch: authorized,
  });
  return { api, session, account: new Account(api) };
}

function withToken(request: Request, token: string): Request {
  const copy = new Request(request.clone());
  copy.headers.set("authorization", `Bearer ${token}`);
  return copy;
}
