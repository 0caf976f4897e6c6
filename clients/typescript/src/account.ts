// The rest of an account's life: getting back in with a mailed link,
// proving or changing the address, and a second factor. Each call resolves once the server took
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
  /** The code (of the authenticator app, or a recovery code) is wrong or was used. */
  | "invalid_code"
  /** `startTotpEnrolment`, `confirmTotpEnrolment`: a second factor is on already. */
  | "mfa_already_enabled"
  /** `confirmTotpEnrolment`: no enrolment waits (none, or it expired after 15 minutes). */
  | "mfa_not_started"
  /** `removeTotp`: no second factor is on. */
  | "mfa_not_enabled"
  /** A malformed request. */
  | "invalid_request";

/** What an authenticator app needs to add the account. */
export interface TotpEnrolment {
  /** The secret, base32, for typing. */
  secret: string;
  /** `otpauth://totp/…`, for a link on a phone. */
  otpauthUri: string;
  /** The URI as a QR code (an SVG document), to scan. */
  qrSvg: string;
}

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

  /**
   * Starts adding an authenticator app (TOTP) to the signed-in account:
   * show `qrSvg` (or `secret`), then confirm with a code the app shows.
   */
  async startTotpEnrolment(currentPassword: string): Promise<TotpEnrolment> {
    const { data, response, error } = await this.#api.POST("/users/me/mfa/totp", {
      body: { current_password: currentPassword },
    });
    succeeded(response, error);
    return { secret: data!.secret, otpauthUri: data!.otpauth_uri, qrSvg: data!.qr_svg };
  }

  /**
   * Turns the second factor on with a code from the app. Resolves to ten
   * recovery codes, shown this once; every other session of the account ends.
   */
  async confirmTotpEnrolment(code: string): Promise<string[]> {
    const { data, response, error } = await this.#api.POST("/users/me/mfa/totp/confirm", {
      body: { code },
    });
    succeeded(response, error);
    return data!.recovery_codes;
  }

  /** Turns the second factor off: the password and a code (from the app, or a recovery code). */
  async removeTotp(currentPassword: string, code: string): Promise<void> {
    const { response, error } = await this.#api.DELETE("/users/me/mfa/totp", {
      body: { current_password: currentPassword, code },
    });
    succeeded(response, error);
  }
}

function succeeded(response: Response, error: unknown): void {
  if (!response.ok) throw errorOf(response, error);
}
