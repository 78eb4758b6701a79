// Pure parts, no server: backoff and Retry-After arithmetic, idempotency keys, option checks.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULT_RETRY, backoffDelay, createClient, newIdempotencyKey, parseRetryAfter } from '@stripemeter/sdk-node';

test('backoff doubles from `backoff`, is capped by `maxBackoff`, and jitter takes a fraction at random', () => {
  const retry = { ...DEFAULT_RETRY, backoff: 100, maxBackoff: 1000, jitter: 0.5 };
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(retry, n, 1)), [100, 200, 400, 800, 1000]);
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(retry, n, 0)), [50, 100, 200, 400, 500]);
  assert.equal(backoffDelay({ ...retry, jitter: 0 }, 2, 0.7), 200);
  assert.equal(backoffDelay({ ...retry, jitter: 1 }, 2, 0.25), 50);
});

test('Retry-After is read as seconds or as an HTTP date, never negative', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('2', now), 2000);
  assert.equal(parseRetryAfter('0.5', now), 500);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(null, now), null);
});

test('idempotency keys are sdk_ and 32 hex digits, all different', () => {
  const keys = new Set(Array.from({ length: 1000 }, () => newIdempotencyKey()));
  assert.equal(keys.size, 1000);
  for (const key of keys) assert.match(key, /^sdk_[0-9a-f]{32}$/);
});

test('options are checked when the client is created', () => {
  assert.throws(() => createClient({ apiUrl: 'not a url' }), TypeError);
  assert.throws(() => createClient({ apiUrl: 'http://x', batchSize: 0 }), RangeError);
  assert.throws(() => createClient({ apiUrl: 'http://x', batchSize: 1001 }), RangeError);
  assert.throws(() => createClient({ apiUrl: 'http://x', flushInterval: 0 }), RangeError);
  assert.throws(() => createClient({ apiUrl: 'http://x', retry: { attempts: 0 } }), RangeError);
  assert.throws(() => createClient({ apiUrl: 'http://x', retry: { jitter: 2 } }), RangeError);
  const client = createClient({ apiUrl: 'http://x:1/', flushOnExit: false, flushInterval: false });
  assert.equal(client.apiUrl, 'http://x:1');
  assert.equal(client.retry.attempts, DEFAULT_RETRY.attempts);
  assert.equal(createClient({ apiUrl: 'http://x', retry: false, flushOnExit: false, flushInterval: false }).retry.attempts, 1);
});
