// Background batching: by size, by interval, chunking, and what one flush sends.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createClient } from '@stripemeter/sdk-node';

import { FaultyProxy } from './helpers/proxy.mjs';
import { sharedServer, sleep, uniqueCustomer } from './helpers/server.mjs';

let server;
before(async () => {
  server = await sharedServer();
});
after(() => server.stop());

async function setUp(t, options) {
  const proxy = await FaultyProxy.create(server.url);
  const client = createClient({ apiUrl: proxy.url, apiKey: server.key, tenantId: server.tenant, ...options });
  t.after(async () => {
    await client.close().catch(() => {});
    await proxy.close();
  });
  return { proxy, client };
}

async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('a full batch is sent at once; the rest waits for flush()', async (t) => {
  const customer = uniqueCustomer('size');
  const { proxy, client } = await setUp(t, { batchSize: 5, flushInterval: false });
  for (let i = 0; i < 12; i++) await client.track({ metric: 'api_calls', customerRef: customer, quantity: 1 });
  await until(() => client.pending === 2, 'the two full batches to be sent');
  assert.deepEqual(proxy.ingests.map((events) => events.length), [5, 5]);
  await sleep(100);
  assert.equal(proxy.ingests.length, 2, 'a partial batch is not sent by size');
  const result = await client.flush();
  assert.equal(result.accepted, 2);
  assert.deepEqual(proxy.ingests.map((events) => events.length), [5, 5, 2]);
  assert.equal(await server.usage(customer, 'api_calls'), 12);
  const keys = proxy.ingests.flat().map((e) => e.idempotencyKey);
  assert.equal(new Set(keys).size, 12);
  for (const request of proxy.requests) {
    assert.equal(request.headers.authorization, `Bearer ${server.key}`);
    assert.match(request.headers['user-agent'], /^stripemeter-node\/\d/);
    assert.equal(request.json.tenantId, server.tenant);
  }
});

test('the interval sends what is queued without any call', async (t) => {
  const customer = uniqueCustomer('interval');
  const { proxy, client } = await setUp(t, { batchSize: 100, flushInterval: 150 });
  await client.trackMany([1, 2, 3].map((q) => ({ metric: 'api_calls', customerRef: customer, quantity: q })));
  assert.equal(proxy.requests.length, 0);
  await until(() => client.pending === 0 && proxy.ingests.length === 1, 'the interval flush');
  assert.equal(proxy.ingests[0].length, 3);
  assert.equal(await server.usage(customer, 'api_calls'), 6);
});

test('flush() splits what is queued into batches of batchSize', async (t) => {
  const customer = uniqueCustomer('chunks');
  const { proxy, client } = await setUp(t, { batchSize: 10, flushInterval: false });
  // trackMany of 25 sends the two whole batches by size; flush() sends the remaining 5.
  await client.trackMany(Array.from({ length: 25 }, () => ({ metric: 'api_calls', customerRef: customer, quantity: 1 })));
  const result = await client.flush();
  assert.equal(client.pending, 0);
  assert.deepEqual(proxy.ingests.map((events) => events.length), [10, 10, 5]);
  assert.equal(result.accepted + (25 - result.results.length), 25);
  assert.equal(await server.usage(customer, 'api_calls'), 25);
});

test('concurrent flush() calls send each event once; events keep their tracking order', async (t) => {
  const customer = uniqueCustomer('concurrent');
  const { proxy, client } = await setUp(t, { batchSize: 4, flushInterval: false });
  const tracked = [];
  const flushes = [];
  for (let i = 0; i < 10; i++) {
    tracked.push(await client.track({ metric: 'api_calls', customerRef: customer, quantity: 1 }));
    if (i % 3 === 0) flushes.push(client.flush());
  }
  await Promise.all(flushes);
  await client.flush();
  const sent = proxy.ingests.flat().map((e) => e.idempotencyKey);
  assert.deepEqual(sent, tracked.map((e) => e.idempotencyKey));
  assert.ok(proxy.ingests.every((events) => events.length <= 4));
  assert.equal(await server.usage(customer, 'api_calls'), 10);
});

test('close() sends what is queued', async (t) => {
  const customer = uniqueCustomer('close');
  const { proxy, client } = await setUp(t, { batchSize: 50, flushInterval: 60_000 });
  await client.track({ metric: 'api_calls', customerRef: customer, quantity: 4 });
  await client.close();
  assert.equal(proxy.ingests.length, 1);
  assert.equal(client.pending, 0);
  assert.equal(await server.usage(customer, 'api_calls'), 4);
});

test('reads send the queued events first, so they count (flushBeforeRead: false leaves them)', async (t) => {
  const customer = uniqueCustomer('read');
  const { client } = await setUp(t, { flushInterval: false, flushBeforeRead: false });
  await client.track({ metric: 'api_calls', customerRef: customer, quantity: 9 });
  const before = await client.getUsage(customer);
  assert.equal(before.metrics.length, 0);
  assert.equal(client.pending, 1);
  await client.flush();
  const afterFlush = await client.getUsage(customer);
  assert.equal(afterFlush.metrics[0].value, 9);
  const page = await client.listEvents({ customerRef: customer, limit: 10 });
  assert.equal(page.events.length, 1);
  assert.equal(page.hasMore, false);
});
