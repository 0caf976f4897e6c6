// Typed errors: every failure the SDK reports is one of these.
import type { components } from "./schema.js";

type OAuthErrorBody = components["schemas"]["OAuthError"];
type ApiErrorBody = components["schemas"]["ApiError"];

/** An RFC 6749 §5.2 error from the token endpoints (`invalid_grant`, …). */
export class OAuthError extends Error {
  override readonly name = "OAuthError";
  constructor(
    readonly status: number,
    readonly error: OAuthErrorBody["error"] | string,
    readonly description: string,
    /** Seconds the server asked to wait (429, 503), if it said. */
    readonly retryAfter?: number,
  ) {
    super(`${error}: ${description}`);
  }
}

/** Any other error answer of the API (`invalid_token`, `unavailable`, …). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds the server asked to wait (429, 503), if it said. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** Reads an error answer into the matching typed error. */
export async function errorFrom(response: Response): Promise<OAuthError | ApiError> {
  let body: unknown;
  try {
    body = await response.clone().json();
  } catch {
    body = undefined;
  }
  return errorOf(response, body);
}

/** The typed error of an answer whose body was already read (as `openapi-fetch` does). */
export function errorOf(response: Response, body: unknown): OAuthError | ApiError {
  const retryAfter = retryAfterSeconds(response);
  if (isOAuthErrorBody(body)) {
    return new OAuthError(response.status, body.error, body.error_description, retryAfter);
  }
  if (isApiErrorBody(body)) {
    return new ApiError(response.status, body.error, body.message, retryAfter);
  }
  return new ApiError(response.status, "unexpected_response", `HTTP ${response.status}`, retryAfter);
}

/** `Retry-After` in seconds (RFC 9110 §10.2.3: delay-seconds or a date). */
export function retryAfterSeconds(response: Response, now = Date.now()): number | undefined {
  const value = response.headers.get("retry-after");
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

function isOAuthErrorBody(body: unknown): body is OAuthErrorBody {
  return typeof body === "object" && body !== null && "error" in body && "error_description" in body;
}

function isApiErrorBody(body: unknown): body is ApiErrorBody {
  return typeof body === "object" && body !== null && "error" in body && "message" in body;
}
