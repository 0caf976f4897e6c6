// @gatehouse/client: a typed Gatehouse client with a token manager.
export { Account, type AccountErrorCode, type ResetFor, type TotpEnrolment } from "./account.js";
export { createGatehouse, type Gatehouse, type GatehouseOptions } from "./client.js";
export { ApiError, OAuthError, errorFrom, errorOf, retryAfterSeconds } from "./errors.js";
export {
  MfaRequired,
  Session,
  tokenSet,
  type SecondFactor,
  type PendingStorage,
  type RedirectSignInOptions,
  type SessionEvents,
  type SessionOptions,
  type SignedOutReason,
} from "./session.js";
export { LocalStorageStorage, MemoryStorage, type TokenSet, type TokenStorage } from "./storage.js";
export { defaultRetryPolicy, type RetryPolicy } from "./transport.js";
export type { components, operations, paths } from "./schema.js";
