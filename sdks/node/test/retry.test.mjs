// Retries: network errors, lost answers, timeouts, 429 with Retry-After and 5xx are retried with
// the same events and keys, so a retry is a duplicate and never a double count.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { EventsRejectedError, NetworkError, RateLimitError, ServerError, createClient } from '@stripemeter/sdk-node';

import { FaultyProxy } from './helpers/proxy.mjs';
import { sharedServer, uniqueCustomer } from './helpers/server.mjs';

let server;
before(async () => {
  server = await sharedServer();
});
after(() => server.stop());

const FAST = { backoff: 20, maxBackoff: 100 };

async function setUp(t, options = {}) {
  const proxy = await FaultyProxy.create(server.url);
  const client = createClient({
    apiUrl: proxy.url,
    apiKey: server.key,
    flushInterval: false,
    retry: FAST,
    onError: () => {},
    ...options,
  });
  t.after(async () => {
    await client.close().catch(() => {});
    await proxy.close();
  });
  return { proxy, client };
}

const unavailable = { status: 503, body: { error: { type: 'api_error', code: 'unavailable', message: 'busy' } } };

test('5xx answers are retried with the same events until one succeeds', async (t) => {
  const customer = uniqueCustomer('5xx');
  const { proxy, client } = await setUp(t);
  proxy.next(unavailable, { status: 502 }, 'forward');
  const tracked = await client.track({ metric: 'api_calls', customerRef: customer, quantity: 5 });
  const result = await client.flush();
  assert.equal(result.accepted, 1);
  assert.equal(proxy.requests.length, 3);
  for (const events of proxy.ingests) assert.deepEqual(events, [tracked]);
  assert.equal(await server.usage(customer, 'api_calls'), 5);
});

test('a lost answer is retried and the server says duplicate: counted once', async (t) => {
  const customer = uniqueCustomer('lost');
  const { proxy, client } = await setUp(t);
  proxy.next('lose-answer', 'forward');
  const tracked = await client.track({ metric: 'api_calls', customerRef: customer, quantity: 5 });
  const result = await client.flush();
  assert.equal(proxy.requests.length, 2);
  assert.equal(result.accepted, 0);
  assert.equal(result.duplicates, 1);
  assert.equal(result.results[0].idempotencyKey, tracked.idempotencyKey);
  assert.equal(await server.usage(customer, 'api_calls'), 5);
  assert.equal((await server.events(customer)).length, 1);
});

test('no answer in time is retried (the timeout applies per attempt)', async (t) => {
  const customer = uniqueCustomer('timeout');
  const { proxy, client } = await setUp(t, { timeout: 1000 });
  proxy.next('hang', 'forward');
  await client.track({ metric: 'api_calls', customerRef: customer, quantity: 1 });
  const started = Date.now();
  const result = await client.flush();
  assert.ok(Date.now() - started >= 1000, 'the first try waited for its timeout');
  // On a loaded machine the forwarded try may time out too; it is then a duplicate of itself.
  assert.equal(result.accepted + result.duplicates, 1);
  assert.ok(proxy.requests.length >= 2);
  assert.equal(await server.usage(customer, 'api_calls'), 1);
});

const tooMany = { status: 400, body: { error: { type: 'invalid_request_error', code: 'batch_too_large', message: 'a batch holds at most 3 events', param: 'events' } } };

test('a server that takes fewer events per request than batchSize gets smaller batches', async (t) => {
  const customer = uniqueCustomer('small');
  const { proxy, client } = await setUp(t, { batchSize: 10 });
  proxy.rule = (request) => (request.json?.events?.length > 3 ? tooMany : 'forward');
  await client.trackMany(Array.from({ length: 10 }, () => ({ metric: 'api_calls', customerRef: customer, quantity: 1 })));
  await client.flush(); // the full batch went in the background; flush() waits for it
  assert.equal(client.pending, 0);
  assert.deepEqual(proxy.ingests.map((events) => events.length), [10, 5, 2, 2, 2, 2, 2]);
  assert.equal(await server.usage(customer, 'api_calls'), 10);
});

test('an event too large to send alone is dropped as rejected instead of blocking the queue', async (t) => {
  const customer = uniqueCustomer('large');
  const { proxy, client } = await setUp(t);
  const tooLarge = { status: 413, body: { error: { type: 'invalid_request_error', code: 'payload_too_large', message: 'request body exceeds 1024 bytes' } } };
  proxy.rule = (request) => (request.json?.events?.some((e) => e.meta?.huge) ? tooLarge : 'forward');
  const events = await client.trackMany([
    { metric: 'api_calls', customerRef: customer, quantity: 1 },
    { metric: 'api_calls', customerRef: customer, quantity: 1, meta: { huge: 'x'.repeat(2000) } },
    { metric: 'api_calls', customerRef: customer, quantity: 1 },
  ]);
  const error = await client.flush().catch((e) => e);
  assert.ok(error instanceof EventsRejectedError, String(error));
  assert.equal(error.results.length, 1);
  assert.equal(error.results[0].error.code, 'payload_too_large');
  assert.equal(error.events[0].idempotencyKey, events[1].idempotencyKey);
  assert.equal(client.pending, 0);
  assert.equal(await server.usage(customer, 'api_calls'), 2);
});

test('429 waits for Retry-After', async (t) => {
  const customer = uniqueCustomer('429');
  const { proxy, client } = await setUp(t);
  proxy.next({ status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'rate_limited', message: 'slow down' } } });
  await client.track({ metric: 'api_calls', customerRef: customer, quantity: 1 });
  const result = await client.flush();
  assert.equal(result.accepted, 1);
  const [first, second] = proxy.requests;
  assert.ok(second.at - first.at >= 950, `retried after ${second.at - first.at} ms`);
});

test('when the retries run out the error is typed and the events stay queued', async (t) => {
  const customer = uniqueCustomer('exhausted');
  const { proxy, client } = await setUp(t, { retry: { ...FAST, attempts: 3 } });
  proxy.next(unavailable, unavailable, unavailable);
  await client.track({ metric: 'api_calls', customerRef: customer, quantity: 2 });
  const error = await client.flush().catch((e) => e);
  assert.ok(error instanceof ServerError, String(error));
  assert.equal(error.status, 503);
  assert.equal(error.code, 'unavailable');
  assert.equal(proxy.requests.length, 3);
  assert.equal(client.pending, 1);

  proxy.next({ status: 429, headers: { 'retry-after': '3600' }, body: {} });
  const limited = await client.flush().catch((e) => e);
  assert.ok(limited instanceof RateLimitError, 'a Retry-After beyond maxRetryAfter is not waited for');
  assert.equal(limited.retryAfter, 3_600_000);
  assert.equal(client.pending, 1);

  assert.equal((await client.flush()).accepted, 1); // the next flush delivers them
  assert.equal(await server.usage(customer, 'api_calls'), 2);
});

test('retries use growing, jittered waits', async (t) => {
  const { proxy, client } = await setUp(t, { retry: { attempts: 4, backoff: 100, maxBackoff: 1000, jitter: 0.5 } });
  proxy.next(unavailable, unavailable, unavailable);
  await client.track({ metric: 'api_calls', customerRef: uniqueCustomer('backoff'), quantity: 1 });
  await client.flush();
  const gaps = proxy.requests.slice(1).map((r, i) => r.at - proxy.requests[i].at);
  // Waits are 50–100, 100–200, 200–400 ms (plus the round trip).
  assert.equal(gaps.length, 3);
  assert.ok(gaps[0] >= 45 && gaps[1] >= 95 && gaps[2] >= 195, `gaps ${gaps}`);
});

test('reads are retried too; an unreachable server is a NetworkError', async (t) => {
  const customer = uniqueCustomer('read');
  const { proxy, client } = await setUp(t);
  proxy.next({ status: 502 }, 'lose-answer');
  const usage = await client.getUsage(customer);
  assert.equal(usage.customerRef, customer);
  assert.equal(proxy.requests.length, 3);

  const dead = createClient({ apiUrl: 'http://127.0.0.1:9', retry: { ...FAST, attempts: 2 }, flushInterval: false });
  t.after(() => dead.close().catch(() => {}));
  await assert.rejects(dead.getUsage(customer), (e) => e instanceof NetworkError && /after 2 attempts/.test(e.message));
});
