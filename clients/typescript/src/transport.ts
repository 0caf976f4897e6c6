// Sending requests: each attempt within a deadline (and the caller's own
// AbortSignal), `Retry-After` on 429 and 503 honoured with capped, jittered
// exponential backoff; a request body is sent from a fresh clone on every
// attempt.
import { ApiError, retryAfterSeconds } from "./errors.js";

export interface RetryPolicy {
  /** Retries after the first attempt (default 2). */
  maxRetries: number;
  /** A longer wait than this (ms) is not waited for: the answer is returned. */
  maxDelay: number;
  /** The first backoff when the server names no delay (ms, default 250). */
  baseDelay: number;
  /** How long one attempt may take (ms, default 10 s): a request that gets
   * no answer by then (a stalled network, a captive portal, a laptop that
   * slept) fails with `ApiError` code `timeout` instead of hanging. */
  deadline: number;
  sleep: (ms: number) => Promise<void>;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxRetries: 2,
  maxDelay: 10_000,
  baseDelay: 250,
  deadline: 10_000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export type Fetch = (request: Request) => Promise<Response>;

/** `fetch` that gives each attempt `policy.deadline`, and waits and retries
 * 429 and 503 answers as the server asks. */
export function retrying(fetch: Fetch, policy: RetryPolicy): Fetch {
  return async (request) => {
    for (let attempt = 0; ; attempt++) {
      const response = await withDeadline(fetch, request, policy.deadline);
      if ((response.status !== 429 && response.status !== 503) || attempt >= policy.maxRetries) {
        return response;
      }
      const backoff = policy.baseDelay * 2 ** attempt * (1 + Math.random() / 2);
      const asked = retryAfterSeconds(response);
      const delay = asked === undefined ? backoff : Math.max(asked * 1000, backoff);
      if (delay > policy.maxDelay) return response;
      await response.body?.cancel();
      await policy.sleep(delay);
    }
  };
}

/**
 * Sends a fresh clone of `request` that is aborted after `deadline` ms, or
 * when the caller's own signal aborts (which is passed on as is: the caller
 * asked for it). A deadline is reported as `ApiError` code `timeout`, status 0.
 */
async function withDeadline(fetch: Fetch, request: Request, deadline: number): Promise<Response> {
  const timeout = AbortSignal.timeout(deadline);
  const attempt = new Request(request.clone(), { signal: AbortSignal.any([request.signal, timeout]) });
  try {
    return await fetch(attempt);
  } catch (error) {
    if (timeout.aborted && !request.signal.aborted) {
      throw new ApiError(0, "timeout", `no answer within ${deadline} ms`);
    }
    throw error;
  }
}
