// The rest of an account's life: getting back in with a mailed link, and
// proving or changing the address. Each call resolves once the server took
// it, and throws a typed `ApiError` otherwise (its `code` is the server's:
// see `AccountErrorCode`).
import type { Client } from "openapi-fetch";
import { errorOf } from "./errors.js";
import type { paths } from "./schema.js";

/** The `code` of an `ApiError` these calls throw, besides `unavailable`. */
export type AccountErrorCode =
  /** The link is unknown, used or expired; or, on a protected call, no live session. */
  | "invalid_token"
  /** The new password is refused; the message says why (the link stays usable). */
  | "invalid_password"
  /** The address cannot be one. */
  | "invalid_email"
  /** `changeEmail`: the password is wrong. */
  | "invalid_current_password"
  /** `requestEmailVerification`: the account has no address. */
  | "no_email"
  /** `requestEmailVerification`: the address is verified already. */
  | "already_verified"
  /** Too many requests from here (`retryAfter` says how long to wait). */
  | "too_many_requests"
  | "too_many_attempts"
  /** A malformed request. */
  | "invalid_request";

/** Who forgot their password: by name or by address. */
export type ResetFor = { username: string } | { email: string };

/** Account recovery and addresses, on the client's `api`. */
export class Account {
  readonly #api: Client<paths>;

  constructor(api: Client<paths>) {
    this.#api = api;
  }

  /**
   * Asks for a password reset link for the account `who` names. Resolves
   * alike whether or not it exists: the mail goes to its address if it has one.
   */
  async requestPasswordReset(who: ResetFor): Promise<void> {
    const { response, error } = await this.#api.POST("/auth/password-reset", { body: who });
    succeeded(response, error);
  }

  /** Sets `newPassword` with the `token` of a reset link; every session of the account ends. */
  async confirmPasswordReset(token: string, newPassword: string): Promise<void> {
    const { response, error } = await this.#api.POST("/auth/password-reset/confirm", {
      body: { token, new_password: newPassword },
    });
    succeeded(response, error);
  }

  /** Confirms an address with the `token` of a verification or email-change link. */
  async verifyEmail(token: string): Promise<void> {
    const { response, error } = await this.#api.POST("/auth/email/verify", { body: { token } });
    succeeded(response, error);
  }

  /** Mails the signed-in account's address a verification link (again). */
  async requestEmailVerification(): Promise<void> {
    const { response, error } = await this.#api.POST("/users/me/email/verification");
    succeeded(response, error);
  }

  /**
   * Asks to change the signed-in account's address: a link goes to `email`,
   * and the change happens when it is confirmed (`verifyEmail`).
   */
  async changeEmail(email: string, currentPassword: string): Promise<void> {
    const { response, error } = await this.#api.PUT("/users/me/email", {
      body: { email, current_password: currentPassword },
    });
    succeeded(response, error);
  }
}

function succeeded(response: Response, error: unknown): void {
  if (!response.ok) throw errorOf(response, error);
}
