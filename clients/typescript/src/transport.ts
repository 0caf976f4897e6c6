// Sending requests: `Retry-After` on 429 and 503 honoured with capped,
// jittered exponential backoff; a request body is sent from a fresh clone on
// every attempt.
import { retryAfterSeconds } from "./errors.js";

export interface RetryPolicy {
  /** Retries after the first attempt (default 2). */
  maxRetries: number;
  /** A longer wait than this (ms) is not waited for: the answer is returned. */
  maxDelay: number;
  /** The first backoff when the server names no delay (ms, default 250). */
  baseDelay: number;
  sleep: (ms: number) => Promise<void>;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxRetries: 2,
  maxDelay: 10_000,
  baseDelay: 250,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export type Fetch = (request: Request) => Promise<Response>;

/** `fetch` that waits and retries 429 and 503 answers as the server asks. */
export function retrying(fetch: Fetch, policy: RetryPolicy): Fetch {
  return async (request) => {
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(request.clone());
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
