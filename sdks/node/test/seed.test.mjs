// The calls of the seed's "Node.js SDK" section, as written (plus an apiKey), against a real server.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { createClient } from '@stripemeter/sdk-node';

import { sharedServer } from './helpers/server.mjs';

let server;
before(async () => {
  server = await sharedServer();
});
after(() => server.stop());

test('the seed calls work as written: track, getUsage, getProjection', async (t) => {
  const client = createClient({
    apiUrl: server.url,
    tenantId: server.tenant,
    customerId: 'cus_ABC123',
    apiKey: server.key,
  });
  t.after(() => client.close());

  // Track usage
  const tracked = await client.track({
    metric: 'api_calls',
    customerRef: 'cus_ABC123',
    quantity: 100,
    meta: { endpoint: '/v1/search' },
  });
  assert.match(tracked.idempotencyKey, /^sdk_[0-9a-f]{32}$/);
  assert.equal(client.pending, 1);

  // Get live usage: queued events are sent first, so the read counts them.
  const usage = await client.getUsage('cus_ABC123');
  assert.equal(client.pending, 0);
  assert.equal(usage.customerRef, 'cus_ABC123');
  const calls = usage.metrics.find((m) => m.metric === 'api_calls');
  assert.ok(calls, JSON.stringify(usage));
  assert.equal(calls.value, 100);
  assert.match(usage.period.start, /^\d{4}-\d{2}-01T00:00:00Z$/);

  const stored = await server.events('cus_ABC123');
  assert.equal(stored.length, 1);
  assert.equal(stored[0].idempotencyKey, tracked.idempotencyKey);
  assert.equal(stored[0].source, 'sdk');
  assert.deepEqual(stored[0].meta, { endpoint: '/v1/search' });

  const projection = await client.getProjection('cus_ABC123');
  assert.equal(projection.customerRef, 'cus_ABC123');
  assert.equal(projection.periodStart, usage.period.start);
  const line = projection.lineItems.find((l) => l.metric === 'api_calls');
  assert.equal(line.quantity, 100);
  assert.equal(line.priced, false, 'no price configured yet: the projection says so');
  assert.deepEqual(projection.unpricedMetrics, ['api_calls']);
  assert.equal(projection.complete, false);
});

test('getProjection prices the usage with the configured price', async (t) => {
  const metric = `calls_${Math.random().toString(36).slice(2, 8)}`;
  // 50 cents per call, set through the API (the SDK reads prices, it does not manage them).
  const response = await fetch(`${server.url}/v1/metric-prices/${metric}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${server.key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ price: { currency: 'usd', billing_scheme: 'per_unit', unit_amount: 50 } }),
  });
  assert.equal(response.status, 200, await response.text());
  const client = createClient({ apiUrl: server.url, apiKey: server.key, tenantId: server.tenant });
  t.after(() => client.close());
  await client.track({ metric, customerRef: 'cus_priced_1', quantity: 100 });
  const projection = await client.getProjection('cus_priced_1', { taxRate: 10 });
  assert.equal(projection.currency, 'usd');
  const line = projection.lineItems.find((l) => l.metric === metric);
  assert.equal(line.priced, true);
  assert.equal(line.amount, 5000);
  assert.equal(line.total, 50);
  assert.equal(projection.subtotal, 50);
  assert.equal(projection.tax, 5);
  assert.equal(projection.total, 55);
  assert.ok(projection.projected.total >= projection.total);
  assert.equal(typeof projection.freshness.pendingPushes, 'number');
});

test('customerId is the default customer of track and getUsage', async (t) => {
  const client = createClient({ apiUrl: server.url, apiKey: server.key, customerId: 'cus_default_1' });
  t.after(() => client.close());
  const tracked = await client.track({ metric: 'seats', quantity: '2.5' });
  assert.equal(tracked.customerRef, 'cus_default_1');
  assert.equal(tracked.quantity, '2.5');
  const usage = await client.getUsage();
  assert.equal(usage.metrics.find((m) => m.metric === 'seats').value, 2.5);
});

test('the CommonJS build answers require() with the same API', async (t) => {
  const require = createRequire(import.meta.url);
  const sdk = require('@stripemeter/sdk-node');
  assert.equal(typeof sdk.createClient, 'function');
  const client = sdk.createClient({ apiUrl: server.url, apiKey: server.key, tenantId: server.tenant });
  t.after(() => client.close());
  await client.track({ metric: 'api_calls', customerRef: 'cus_cjs_1', quantity: 3 });
  const result = await client.flush();
  assert.equal(result.accepted, 1);
  const usage = await client.getUsage('cus_cjs_1');
  assert.equal(usage.metrics[0].value, 3);
  assert.ok(sdk.StripeMeterError.prototype instanceof Error);
});
