/** Retry decisions, pure: how long to wait after an outcome, or whether to stop. */

import type { RetryOptions } from './types.js';

export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({
  attempts: 5,
  backoff: 500,
  maxBackoff: 30_000,
  jitter: 0.5,
  maxRetryAfter: 60_000,
  statuses: Object.freeze([429, 500, 502, 503, 504]),
});

/** The retry settings from the client options (`false` = no retries). */
export function resolveRetry(options: Partial<RetryOptions> | false | undefined): RetryOptions {
  if (options === false) return { ...DEFAULT_RETRY, attempts: 1 };
  const retry = { ...DEFAULT_RETRY, ...(options ?? {}) };
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) {
    throw new RangeError('retry.attempts must be an integer of at least 1');
  }
  for (const name of ['backoff', 'maxBackoff', 'maxRetryAfter'] as const) {
    if (!(retry[name] >= 0)) throw new RangeError(`retry.${name} must not be negative`);
  }
  if (!(retry.jitter >= 0 && retry.jitter <= 1)) throw new RangeError('retry.jitter must be between 0 and 1');
  return retry;
}

/**
 * The wait before retry number `n` (1-based): capped exponential, partly random.
 *
 * With jitter `j` and `d = min(maxBackoff, backoff · 2^(n−1))` the wait is `d·(1 − j) + d·j·rand`,
 * so clients that failed together spread out.
 */
export function backoffDelay(retry: RetryOptions, n: number, rand: number): number {
  const ceiling = Math.min(retry.maxBackoff, retry.backoff * 2 ** (n - 1));
  return ceiling * (1 - retry.jitter) + ceiling * retry.jitter * rand;
}

/** Milliseconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value == null) return null;
  const text = value.trim();
  if (text === '') return null;
  let ms: number;
  if (/^[+-]?\d+(\.\d+)?$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return null;
    ms = when - now;
  }
  return Number.isFinite(ms) ? Math.max(0, ms) : null;
}

/** What happened to one try: an answer with its status, or no answer. */
export type Outcome = { status: number; retryAfter: number | null } | { error: unknown };

/**
 * Milliseconds to wait before trying again after `outcome` of try `attempt`, or null to stop.
 *
 * Stops on a final answer (any status not in `statuses`), when the attempts are used up, when a
 * `Retry-After` exceeds `maxRetryAfter`, and when the wait would end past `deadline` (epoch ms).
 */
export function nextDelay(
  retry: RetryOptions,
  outcome: Outcome,
  attempt: number,
  rand: number,
  deadline: number | null = null,
  now: number = Date.now(),
): number | null {
  if (attempt >= retry.attempts) return null;
  let delay: number;
  if ('status' in outcome) {
    if (!retry.statuses.includes(outcome.status)) return null;
    if (outcome.retryAfter != null) {
      if (outcome.retryAfter > retry.maxRetryAfter) return null;
      delay = outcome.retryAfter;
    } else {
      delay = backoffDelay(retry, attempt, rand);
    }
  } else {
    delay = backoffDelay(retry, attempt, rand);
  }
  if (deadline != null && now + delay > deadline) return null;
  return delay;
}
