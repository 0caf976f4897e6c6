// The token manager: signs in, keeps the access token fresh, rotates the
// refresh token once however many callers (and tabs) need it, and signs out.
import { ApiError, OAuthError, errorFrom } from "./errors.js";
import type { components } from "./schema.js";
import { MemoryStorage, type TokenSet, type TokenStorage } from "./storage.js";
import type { Fetch } from "./transport.js";

type TokenResponse = components["schemas"]["TokenResponse"];
type TokenRequest = components["schemas"]["TokenRequest"];
type MfaRequiredBody = components["schemas"]["MfaRequired"];

const MFA_OTP = "urn:gatehouse:grant-type:mfa-otp";
const MFA_RECOVERY_CODE = "urn:gatehouse:grant-type:mfa-recovery-code";

/** What finishes a sign-in that needs a second factor. */
export type SecondFactor =
  /** The six-digit code of the authenticator app. */
  | { otp: string }
  /** One of the account's recovery codes (each works once). */
  | { recoveryCode: string };

/**
 * The password was right and the account has a second factor: the sign-in's
 * second step. `complete` may be called again after a wrong code (it throws
 * `OAuthError` `invalid_grant`), a few times, within five minutes; then the
 * sign-in starts over with the password.
 */
export class MfaRequired {
  readonly kind = "mfa_required" as const;
  readonly #complete: (factor: SecondFactor) => Promise<TokenSet>;

  constructor(
    /** The server's explanation. */
    readonly description: string,
    complete: (factor: SecondFactor) => Promise<TokenSet>,
  ) {
    this.#complete = complete;
  }

  /** Finishes the sign-in with a code: the new session's tokens. */
  complete(factor: SecondFactor): Promise<TokenSet> {
    return this.#complete(factor);
  }
}

export type SignedOutReason =
  /** `signOut()` in this tab. */
  | "logout"
  /** The server refused the refresh token: the session ended elsewhere. */
  | "invalid_grant"
  /** Another tab of this session signed out. */
  | "elsewhere";

export interface SessionEvents {
  /** New tokens: after sign-in, a refresh, or a refresh in another tab. */
  tokens: (tokens: TokenSet) => void;
  signedOut: (reason: SignedOutReason) => void;
}

export interface SessionOptions {
  baseUrl: string;
  /** Sends a request, with the retry policy applied. */
  send: Fetch;
  storage?: TokenStorage;
  /** Sent as `client_id` at sign-in; omitted, the server's default client. */
  clientId?: string;
  /** Refresh this long (ms) before the access token expires (default 60 s;
   * at most half its lifetime). */
  refreshAhead?: number;
  /** The client's clock (ms since epoch); `Date.now` by default. */
  now?: () => number;
  /** Names the Web Lock and BroadcastChannel that tabs coordinate on. */
  coordinationName?: string;
  /** The longest wait (ms) for another tab's refresh to let go of the lock
   * before refreshing without it (default 11 s: one request's deadline and
   * a second). */
  lockWait?: number;
  /** The `iss` authorization responses must carry (RFC 9207); `baseUrl`
   * by default. */
  issuer?: string;
  /** Where a redirect sign-in keeps its PKCE verifier and `state` until the
   * browser comes back: `sessionStorage` by default (this tab only). */
  pendingStorage?: PendingStorage;
}

/** The part of the Web Storage API a redirect sign-in needs. */
export interface PendingStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface RedirectSignInOptions {
  /** Where Gatehouse sends the browser back: a redirect URI registered for
   * the client (`gatehouse client create --redirect-uri …`). */
  redirectUri: string;
  /** Space-separated scopes (default: the server's, `profile`). */
  scope?: string;
  /** `"login"`: ask for the password even in a browser signed in to
   * Gatehouse. */
  prompt?: "login";
  /** Goes to the URL: `location.assign` by default. */
  navigate?: (url: string) => void;
}

/** A redirect sign-in under way: its verifier, until the callback. */
interface Pending {
  verifier: string;
  redirectUri: string;
}

type Message =
  | { type: "tokens"; tokens: TokenSet }
  | { type: "signedOut"; sessionId: string };

/**
 * Holds one session's tokens. Concurrent callers that need a fresh token share
 * one refresh; in browsers, tabs take turns through a Web Lock (where there is
 * one) and tell each other of new tokens and sign-outs through a
 * BroadcastChannel. The server's refresh grace window is the backstop when
 * two rotations race anyway.
 */
export class Session {
  readonly storage: TokenStorage;
  readonly #options: SessionOptions;
  readonly #now: () => number;
  readonly #listeners: { [K in keyof SessionEvents]: Set<SessionEvents[K]> } = {
    tokens: new Set(),
    signedOut: new Set(),
  };
  readonly #channel: BroadcastChannel | undefined;
  readonly #lockName: string;
  #refreshing: Promise<TokenSet | null> | null = null;
  /** Moves on at every sign-in and sign-out: a refresh begun in an earlier
   * epoch is discarded when it returns. */
  #epoch = 0;
  /** The session this client last held, for messages from other tabs. */
  #sessionId: string | null = null;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.storage = options.storage ?? new MemoryStorage();
    this.#now = options.now ?? Date.now;
    const name = options.coordinationName ?? `gatehouse:${options.baseUrl}`;
    this.#lockName = `${name}:refresh`;
    if (typeof BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(name);
      this.#channel.onmessage = (event: MessageEvent<Message>) => void this.#receive(event.data);
      // Node has BroadcastChannel too: it must not keep a process alive.
      (this.#channel as { unref?: () => void }).unref?.();
    }
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof SessionEvents>(event: K, listener: SessionEvents[K]): () => void {
    this.#listeners[event].add(listener);
    return () => this.#listeners[event].delete(listener);
  }

  /** Stops listening to other tabs. */
  close(): void {
    this.#channel?.close();
  }

  /** The stored tokens, as they are (possibly expiring). */
  async current(): Promise<TokenSet | null> {
    const tokens = await this.storage.get();
    if (tokens && this.#sessionId === null) this.#sessionId = tokens.sessionId;
    return tokens;
  }

  /**
   * Logs in with the password grant: a new session. For an account with a
   * second factor, the right password resolves to an `MfaRequired` step
   * instead: finish it with `complete({ otp })` or
   * `complete({ recoveryCode })`. A wrong password throws `OAuthError`
   * `invalid_grant` either way.
   */
  async signIn(username: string, password: string, scope?: string): Promise<TokenSet | MfaRequired> {
    const epoch = ++this.#epoch;
    const form: TokenRequest = { grant_type: "password", username, password };
    if (scope !== undefined) form.scope = scope;
    if (this.#options.clientId !== undefined) form.client_id = this.#options.clientId;
    const answer = await this.#grantOrStep(form);
    if (epoch !== this.#epoch) throw new ApiError(0, "superseded", "signed out during sign-in");
    if (answer instanceof MfaRequired) return answer;
    await this.#adopt(answer);
    return answer;
  }

  /** The second step of a sign-in: the password step's token and a code. */
  async #completeSignIn(mfaToken: string, factor: SecondFactor): Promise<TokenSet> {
    const epoch = ++this.#epoch;
    const form: TokenRequest =
      "otp" in factor
        ? { grant_type: MFA_OTP, mfa_token: mfaToken, otp: factor.otp }
        : { grant_type: MFA_RECOVERY_CODE, mfa_token: mfaToken, recovery_code: factor.recoveryCode };
    if (this.#options.clientId !== undefined) form.client_id = this.#options.clientId;
    const tokens = await this.#grant(form);
    if (epoch !== this.#epoch) throw new ApiError(0, "superseded", "signed out during sign-in");
    await this.#adopt(tokens);
    return tokens;
  }

  /**
   * Signs in through Gatehouse's own sign-in page (the authorization code
   * flow with PKCE): keeps a fresh verifier and `state` in `pendingStorage`
   * and sends the browser to `/oauth/authorize`. The page that
   * `redirectUri` loads then calls `handleRedirectCallback()`. Returns the
   * URL it went to.
   */
  async signInWithRedirect(options: RedirectSignInOptions): Promise<string> {
    const clientId = this.#options.clientId;
    if (clientId === undefined) {
      throw new ApiError(0, "invalid_request", "a redirect sign-in needs the client's `clientId`");
    }
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
    const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
    const pending: Pending = { verifier, redirectUri: options.redirectUri };
    this.#pending().setItem(pendingKey(state), JSON.stringify(pending));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: clientId,
      redirect_uri: options.redirectUri,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    if (options.scope !== undefined) query.set("scope", options.scope);
    if (options.prompt !== undefined) query.set("prompt", options.prompt);
    const url = `${this.#base()}/oauth/authorize?${query}`;
    (options.navigate ?? ((to: string) => globalThis.location.assign(to)))(url);
    return url;
  }

  /**
   * Finishes a redirect sign-in on the page Gatehouse sent the browser back
   * to (`url`, `location.href` by default): checks `state` (one this tab
   * started, used once) and `iss`, redeems the code with its verifier, and
   * adopts the session. An `error` in the answer (`access_denied`, …) is
   * thrown as an `OAuthError`.
   */
  async handleRedirectCallback(url: string = globalThis.location.href): Promise<TokenSet> {
    const answer = new URL(url).searchParams;
    const state = answer.get("state");
    const stored = state === null ? null : this.#pending().getItem(pendingKey(state));
    if (state === null || stored === null) {
      throw new OAuthError(0, "invalid_request", "the answer's `state` is not one this browser sent");
    }
    this.#pending().removeItem(pendingKey(state));
    const issuer = (this.#options.issuer ?? this.#base()).replace(/\/$/, "");
    if (answer.get("iss") !== issuer) {
      throw new OAuthError(0, "invalid_request", "the answer does not come from this issuer (RFC 9207)");
    }
    const error = answer.get("error");
    if (error !== null) {
      throw new OAuthError(0, error, answer.get("error_description") ?? error);
    }
    const code = answer.get("code");
    if (code === null) throw new OAuthError(0, "invalid_request", "the answer holds no code");
    const pending = JSON.parse(stored) as Pending;
    const epoch = ++this.#epoch;
    const form: TokenRequest = {
      grant_type: "authorization_code",
      code,
      redirect_uri: pending.redirectUri,
      code_verifier: pending.verifier,
    };
    if (this.#options.clientId !== undefined) form.client_id = this.#options.clientId;
    const tokens = await this.#grant(form);
    if (epoch !== this.#epoch) throw new ApiError(0, "superseded", "signed out during sign-in");
    await this.#adopt(tokens);
    return tokens;
  }

  /** An access token valid for at least the refresh margin, refreshing first
   * when it is not; `null` when signed out. */
  async accessToken(): Promise<string | null> {
    const tokens = await this.current();
    if (!tokens) return null;
    if (!this.expiring(tokens)) return tokens.accessToken;
    try {
      return (await this.refresh(tokens))?.accessToken ?? null;
    } catch (error) {
      // The server is unreachable or busy: a token that has not expired
      // yet still works.
      if (tokens.expiresAt > this.#now()) return tokens.accessToken;
      throw error;
    }
  }

  /** Whether `tokens` is within the refresh margin of its expiry. */
  expiring(tokens: TokenSet): boolean {
    const ahead = Math.min(this.#options.refreshAhead ?? 60_000, tokens.lifetime / 2);
    return this.#now() >= tokens.expiresAt - ahead;
  }

  /**
   * Rotates the refresh token, once for all concurrent callers: a caller that
   * finds the session already rotated past `seen` (by another caller or tab)
   * gets those tokens without a request. `null` when the session has ended.
   */
  refresh(seen?: TokenSet): Promise<TokenSet | null> {
    this.#refreshing ??= this.#inTurn(() => this.#rotate(seen)).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  /**
   * Decides what to retry a request with after a 401 for `sent`: the current
   * token if it has replaced `sent` meanwhile, else a refreshed one if the
   * session still lives. `null`: do not retry (and, if the refresh was refused,
   * the session has signed out).
   */
  async afterUnauthorized(sent: string): Promise<string | null> {
    const tokens = await this.current();
    if (!tokens) return null;
    if (tokens.accessToken !== sent) return tokens.accessToken;
    const refreshed = await this.refresh(tokens);
    return refreshed && refreshed.accessToken !== sent ? refreshed.accessToken : null;
  }

  /** Ends the session here and on the server. Local state is cleared first,
   * so a refresh still in flight is discarded when it returns. */
  async signOut(): Promise<void> {
    this.#epoch++;
    const tokens = await this.current();
    await this.storage.clear();
    this.#sessionId = null;
    if (tokens) this.#post({ type: "signedOut", sessionId: tokens.sessionId });
    this.#emit("signedOut", "logout");
    if (!tokens) return;
    const response = await this.#options.send(
      new Request(`${this.#base()}/auth/logout`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refreshToken }),
      }),
    );
    if (!response.ok) throw await errorFrom(response);
  }

  async #rotate(seen: TokenSet | undefined): Promise<TokenSet | null> {
    const epoch = this.#epoch;
    const tokens = await this.current();
    if (!tokens) return null;
    if (seen && tokens.refreshToken !== seen.refreshToken) {
      // Rotated meanwhile (by another tab, through shared storage).
      this.#emit("tokens", tokens);
      return tokens;
    }
    let next: TokenSet;
    try {
      next = await this.#grant({ grant_type: "refresh_token", refresh_token: tokens.refreshToken });
    } catch (error) {
      if (epoch !== this.#epoch) return null;
      if (error instanceof OAuthError && error.error === "invalid_grant") {
        await this.#signedOut(tokens.sessionId, "invalid_grant");
        return null;
      }
      throw error;
    }
    // Signed out (or in again) while the refresh was on the wire: its
    // result belongs to a session this client has left.
    if (epoch !== this.#epoch) return null;
    await this.#adopt(next);
    return next;
  }

  async #grant(form: TokenRequest): Promise<TokenSet> {
    const answer = await this.#grantOrStep(form);
    if (answer instanceof MfaRequired) {
      throw new OAuthError(403, "mfa_required", "a second factor is required");
    }
    return answer;
  }

  /** A token request's tokens, or the second step its 403 `mfa_required` asks for. */
  async #grantOrStep(form: TokenRequest): Promise<TokenSet | MfaRequired> {
    const body = new URLSearchParams();
    for (const [key, value] of Object.entries(form)) {
      if (typeof value === "string") body.set(key, value);
    }
    const sentAt = this.#now();
    const response = await this.#options.send(
      new Request(`${this.#base()}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body,
      }),
    );
    if (response.status === 403) {
      const step = (await response
        .clone()
        .json()
        .catch(() => undefined)) as MfaRequiredBody | undefined;
      if (step?.error === "mfa_required" && typeof step.mfa_token === "string") {
        const token = step.mfa_token;
        return new MfaRequired(step.error_description, (factor) => this.#completeSignIn(token, factor));
      }
    }
    if (!response.ok) throw await errorFrom(response);
    return tokenSet((await response.json()) as TokenResponse, sentAt, this.#now());
  }

  async #adopt(tokens: TokenSet): Promise<void> {
    await this.storage.set(tokens);
    this.#sessionId = tokens.sessionId;
    this.#post({ type: "tokens", tokens });
    this.#emit("tokens", tokens);
  }

  async #signedOut(sessionId: string, reason: SignedOutReason): Promise<void> {
    this.#epoch++;
    const tokens = await this.storage.get();
    if (!tokens || tokens.sessionId === sessionId) await this.storage.clear();
    this.#sessionId = null;
    if (reason !== "elsewhere") this.#post({ type: "signedOut", sessionId });
    this.#emit("signedOut", reason);
  }

  async #receive(message: Message): Promise<void> {
    if (message.type === "signedOut") {
      if (message.sessionId === this.#sessionId) await this.#signedOut(message.sessionId, "elsewhere");
      return;
    }
    const { tokens } = message;
    if (tokens.sessionId !== this.#sessionId) return;
    const mine = await this.storage.get();
    // Storage a tab keeps to itself takes the other tab's rotation; shared
    // storage already holds it.
    if (mine?.refreshToken !== tokens.refreshToken) await this.storage.set(tokens);
    this.#emit("tokens", tokens);
  }

  /**
   * Runs `task` holding the tabs' refresh lock, where browsers have one. The
   * wait for the lock is bounded (`lockWait`): a tab whose refresh hangs, or
   * that was frozen holding the lock, never stops the others, which then
   * refresh on their own (the server's grace window makes two rotations of
   * one token safe).
   */
  async #inTurn<T>(task: () => Promise<T>): Promise<T> {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks) return task();
    // The wait, and only the wait, is bounded: once the lock is granted the
    // timer is cleared (an abort after the grant must not run the task twice).
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(), this.#options.lockWait ?? 11_000);
    let running: Promise<T> | undefined;
    try {
      return (await locks.request(this.#lockName, { signal: giveUp.signal }, () => {
        clearTimeout(timer);
        running = task();
        return running;
      })) as T;
    } catch (error) {
      clearTimeout(timer);
      if (running) return running;
      // The wait ran out: refresh without the lock.
      if (giveUp.signal.aborted) return task();
      throw error;
    }
  }

  #post(message: Message): void {
    this.#channel?.postMessage(message);
  }

  #emit<K extends keyof SessionEvents>(event: K, ...args: Parameters<SessionEvents[K]>): void {
    for (const listener of this.#listeners[event]) {
      (listener as (...a: Parameters<SessionEvents[K]>) => void)(...args);
    }
  }

  #base(): string {
    return this.#options.baseUrl.replace(/\/$/, "");
  }

  #pending(): PendingStorage {
    const storage = this.#options.pendingStorage ?? (globalThis as { sessionStorage?: PendingStorage }).sessionStorage;
    if (!storage) throw new ApiError(0, "invalid_request", "no `pendingStorage` (and no sessionStorage here)");
    return storage;
  }
}

function pendingKey(state: string): string {
  return `gatehouse:redirect:${state}`;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A token response as a `TokenSet`. `expires_in` is relative, so the expiry is
 * placed on the client's clock from when the request was sent (which also
 * covers the time on the wire); the skew between the server's clock (`iat`)
 * and the client's is recorded, for tokens whose `exp` must be read alone.
 */
export function tokenSet(response: TokenResponse, sentAt: number, receivedAt: number): TokenSet {
  // The password and refresh grants always return one (only a client's
  // own client-credentials token has none, and the SDK never asks for one).
  if (response.refresh_token === undefined) {
    throw new OAuthError(200, "invalid_grant", "the token response holds no refresh token");
  }
  const claims = decodeClaims(response.access_token);
  const lifetime = response.expires_in * 1000;
  return {
    accessToken: response.access_token,
    refreshToken: response.refresh_token,
    expiresAt: sentAt + lifetime,
    lifetime,
    skew: typeof claims.iat === "number" ? claims.iat * 1000 - receivedAt : 0,
    scope: response.scope,
    sessionId: typeof claims.sid === "string" ? claims.sid : "",
  };
}

/** A JWT's claims, unverified: the client only reads its own session id. */
function decodeClaims(jwt: string): Record<string, unknown> {
  const payload = jwt.split(".")[1] ?? "";
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return {};
  }
}
