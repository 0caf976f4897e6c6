// Where the token manager keeps the session: memory by default, or
// `localStorage` (shared by every tab of the origin, and kept across reloads).

/** A session's tokens, with the expiry in the client's own clock. */
export interface TokenSet {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, in this client's clock (ms since epoch). */
  expiresAt: number;
  /** How long the access token was issued for (ms). */
  lifetime: number;
  /** The server's clock minus this client's, measured at issue (ms). */
  skew: number;
  scope: string;
  /** The session (`sid` claim): tabs share tokens only within one session. */
  sessionId: string;
}

export interface TokenStorage {
  get(): TokenSet | null | Promise<TokenSet | null>;
  set(tokens: TokenSet): void | Promise<void>;
  clear(): void | Promise<void>;
}

/** Tokens in this page's memory only: gone on reload. The default. */
export class MemoryStorage implements TokenStorage {
  #tokens: TokenSet | null = null;
  get(): TokenSet | null {
    return this.#tokens;
  }
  set(tokens: TokenSet): void {
    this.#tokens = tokens;
  }
  clear(): void {
    this.#tokens = null;
  }
}

/**
 * Tokens in `localStorage` under `key`: every tab of the origin shares them
 * (opt in; anything running script on the origin can read them).
 */
export class LocalStorageStorage implements TokenStorage {
  constructor(
    readonly key = "gatehouse.tokens",
    private readonly store: Storage = globalThis.localStorage,
  ) {}
  get(): TokenSet | null {
    const text = this.store.getItem(this.key);
    if (text === null) return null;
    try {
      return JSON.parse(text) as TokenSet;
    } catch {
      return null;
    }
  }
  set(tokens: TokenSet): void {
    this.store.setItem(this.key, JSON.stringify(tokens));
  }
  clear(): void {
    this.store.removeItem(this.key);
  }
}
