// Idempotency keys, duplicates, per-event validation results and typed errors, on a real server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  AuthenticationError,
  ClientClosedError,
  EventsRejectedError,
  PermissionDeniedError,
  QueueFullError,
  ValidationError,
  createClient,
} from '@stripemeter/sdk-node';

import { FaultyProxy } from './helpers/proxy.mjs';
import { sharedServer, uniqueCustomer } from './helpers/server.mjs';

let server;
before(async () => {
  server = await sharedServer();
});
after(() => server.stop());

function client(t, options = {}) {
  const c = createClient({
    apiUrl: server.url,
    apiKey: server.key,
    tenantId: server.tenant,
    flushInterval: false,
    onError: () => {},
    ...options,
  });
  t.after(() => c.close().catch(() => {}));
  return c;
}

test('each tracked event gets its own key; re-sending one is a duplicate, counted once', async (t) => {
  const customer = uniqueCustomer('dup');
  const c = client(t);
  const a = await c.track({ metric: 'api_calls', customerRef: customer, quantity: 7 });
  const b = await c.track({ metric: 'api_calls', customerRef: customer, quantity: 7 });
  assert.notEqual(a.idempotencyKey, b.idempotencyKey);
  const first = await c.flush();
  assert.equal(first.accepted, 2);
  assert.deepEqual(
    first.results.map((r) => [r.status, r.idempotencyKey]),
    [['accepted', a.idempotencyKey], ['accepted', b.idempotencyKey]],
  );

  // The same event again (as a retry would send it): a duplicate.
  await c.track({ metric: 'api_calls', customerRef: customer, quantity: 7, ts: a.ts, idempotencyKey: a.idempotencyKey });
  const again = await c.flush();
  assert.equal(again.accepted, 0);
  assert.equal(again.duplicates, 1);
  assert.equal(again.results[0].status, 'duplicate');
  assert.equal(await server.usage(customer, 'api_calls'), 14);

  // The key re-used for another quantity: a conflict, not counted.
  await c.track({ metric: 'api_calls', customerRef: customer, quantity: 8, ts: a.ts, idempotencyKey: a.idempotencyKey });
  const conflict = await c.flush();
  assert.equal(conflict.conflicts, 1);
  assert.equal(conflict.results[0].reason, 'idempotency_key_reused');
  assert.equal(await server.usage(customer, 'api_calls'), 14);
});

test('an invalid event is refused with a typed error carrying its result, and is not retried', async (t) => {
  const customer = uniqueCustomer('bad');
  const proxy = await FaultyProxy.create(server.url);
  t.after(() => proxy.close());
  const c = client(t, { apiUrl: proxy.url, retry: { backoff: 10 } });
  const bad = await c.track({ metric: 'api_calls', customerRef: customer, quantity: -1 });
  const error = await c.flush().then(
    () => assert.fail('flush should reject'),
    (e) => e,
  );
  assert.ok(error instanceof EventsRejectedError);
  assert.ok(error instanceof ValidationError);
  assert.equal(error.name, 'EventsRejectedError');
  assert.equal(error.status, 400);
  assert.equal(error.code, 'negative_quantity');
  assert.equal(error.param, 'quantity');
  assert.equal(error.results.length, 1);
  assert.equal(error.results[0].status, 'rejected');
  assert.equal(error.results[0].error.code, 'negative_quantity');
  assert.equal(error.results[0].idempotencyKey, bad.idempotencyKey);
  assert.equal(error.events[0].idempotencyKey, bad.idempotencyKey);
  assert.equal(proxy.requests.length, 1, 'a validation error is never retried');
  assert.equal(c.pending, 0, 'a rejected event is dropped, not re-sent forever');
  assert.equal((await c.flush()).accepted, 0);
});

test('in a mixed batch the valid events count and the error lists only the rejected ones', async (t) => {
  const customer = uniqueCustomer('mixed');
  const c = client(t);
  const events = await c.trackMany([
    { metric: 'api_calls', customerRef: customer, quantity: 2 },
    { metric: 'api_calls', customerRef: customer, quantity: -5 },
    { metric: 'api_calls', customerRef: customer, quantity: 3 },
  ]);
  const error = await c.flush().catch((e) => e);
  assert.ok(error instanceof EventsRejectedError, String(error));
  assert.equal(error.results.length, 1);
  assert.equal(error.results[0].index, 1);
  assert.equal(error.events[0].idempotencyKey, events[1].idempotencyKey);
  assert.equal(error.result.accepted, 2);
  assert.equal(error.result.rejected, 1);
  assert.equal(await server.usage(customer, 'api_calls'), 5);
});

test('input that can never be valid is refused at track time and nothing is queued', async (t) => {
  const c = client(t);
  const customerRef = uniqueCustomer('input');
  await assert.rejects(c.track({ metric: 'api_calls', customerRef, quantity: 'ten' }), TypeError);
  await assert.rejects(c.track({ metric: 'api_calls', customerRef, quantity: Number.NaN }), TypeError);
  await assert.rejects(c.track({ metric: '', customerRef, quantity: 1 }), TypeError);
  await assert.rejects(c.track({ metric: 'api_calls', quantity: 1 }), /customerRef/);
  await assert.rejects(c.track({ metric: 'api_calls', customerRef, quantity: 1, ts: '2025-01-01 10:00' }), TypeError);
  await assert.rejects(c.track({ metric: 'api_calls', customerRef, quantity: 1, idempotencyKey: 'k'.repeat(256) }), TypeError);
  await assert.rejects(
    c.trackMany([
      { metric: 'api_calls', customerRef, quantity: 1 },
      { metric: 'api_calls', customerRef, quantity: {} },
    ]),
    TypeError,
  );
  assert.equal(c.pending, 0);
});

test('times, bigints and meta are sent as given; meta is copied at track time', async (t) => {
  const customer = uniqueCustomer('wire');
  const c = client(t);
  const meta = { endpoint: '/v1/search', nested: { n: 1 } };
  const when = new Date();
  const tracked = await c.track({ metric: 'tokens', customerRef: customer, quantity: 12345678901234567890n, ts: when, meta, resourceId: 'r1' });
  meta.endpoint = 'changed';
  assert.equal(tracked.quantity, '12345678901234567890');
  assert.equal(tracked.ts, when.toISOString());
  assert.equal(tracked.meta.endpoint, '/v1/search');
  assert.ok(Object.isFrozen(tracked) && Object.isFrozen(tracked.meta));
  await c.flush();
  const [stored] = await server.events(customer);
  assert.equal(stored.resourceId, 'r1');
  assert.deepEqual(stored.meta, { endpoint: '/v1/search', nested: { n: 1 } });
  assert.equal(Date.parse(stored.ts), when.getTime());
});

test('a wrong API key is an AuthenticationError, not retried, and the events stay queued', async (t) => {
  const proxy = await FaultyProxy.create(server.url);
  t.after(() => proxy.close());
  const c = client(t, { apiUrl: proxy.url, apiKey: 'sm_wrong_key', tenantId: undefined });
  await c.track({ metric: 'api_calls', customerRef: uniqueCustomer('auth'), quantity: 1 });
  const error = await c.flush().catch((e) => e);
  assert.ok(error instanceof AuthenticationError, String(error));
  assert.equal(error.status, 401);
  assert.equal(proxy.requests.length, 1);
  assert.equal(c.pending, 1);
  await assert.rejects(c.getUsage('cus_x'), AuthenticationError);
});

test('another tenant than the key\'s is a PermissionDeniedError', async (t) => {
  const c = client(t, { tenantId: 'someone-else' });
  await assert.rejects(c.getUsage('cus_x'), (e) => e instanceof PermissionDeniedError && e.status === 403);
});

test('a request the server refuses as a whole is a ValidationError with the envelope fields', async (t) => {
  const c = client(t);
  const error = await c.listEvents({ limit: 5000 }).catch((e) => e);
  assert.ok(error instanceof ValidationError, String(error));
  assert.equal(error.type, 'invalid_request_error');
  assert.equal(error.param, 'limit');
  assert.ok(error.requestId === null || typeof error.requestId === 'string');
});

test('maxQueueSize bounds the queue; after close() nothing is accepted', async (t) => {
  const c = client(t, { maxQueueSize: 2, apiUrl: 'http://127.0.0.1:9', retry: false, closeTimeout: 0 });
  await c.track({ metric: 'm', customerRef: 'c', quantity: 1 });
  await c.track({ metric: 'm', customerRef: 'c', quantity: 1 });
  await assert.rejects(c.track({ metric: 'm', customerRef: 'c', quantity: 1 }), QueueFullError);
  await assert.rejects(c.close(), (e) => e.name === 'NetworkError');
  assert.equal(c.pendingEvents().length, 2);
  await assert.rejects(c.track({ metric: 'm', customerRef: 'c', quantity: 1 }), ClientClosedError);
  await assert.rejects(c.getUsage('c'), ClientClosedError);
  await c.close().catch(() => {}); // the same promise again
});
