// An outage in the middle of tracking: the server is killed (SIGKILL) while events are being
// tracked and sent, and started again on the same port and database. Every event tracked before,
// during and after is delivered, exactly once.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NetworkError, createClient } from '@stripemeter/sdk-node';

import { TestServer, sleep } from './helpers/server.mjs';

async function until(check, what, ms) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('events tracked while the server is down are delivered once it returns, exactly once', async (t) => {
  const started = Date.now();
  const mark = (what) => t.diagnostic(`${what} at ${Date.now() - started} ms`);
  // scripts/run-tests.mjs prepares this server's database and key while the rest starts up.
  const prepared = process.env.STRIPEMETER_TEST_OUTAGE;
  const server = prepared ? TestServer.fromJSON(prepared) : await TestServer.prepare({ tenant: 'node-sdk-outage' });
  t.after(() => (prepared ? server.kill() : server.stop()));
  await server.start();
  mark('server ready');
  const customer = 'cus_outage';
  const errors = [];
  const client = createClient({
    apiUrl: server.url,
    apiKey: server.key,
    tenantId: server.tenant,
    batchSize: 25,
    flushInterval: 100,
    timeout: 2000,
    retry: { attempts: 3, backoff: 50, maxBackoff: 200 },
    onError: (error) => errors.push(error),
  });
  t.after(() => client.close().catch(() => {}));

  const tracked = [];
  let tracking = true;
  const tracker = (async () => {
    while (tracking) {
      tracked.push(await client.track({ metric: 'api_calls', customerRef: customer, quantity: 1 }));
      await sleep(4);
    }
  })();

  await until(async () => tracked.length >= 50 && (await server.usage(customer, 'api_calls')) >= 20, 'deliveries before the outage', 15_000);
  await server.kill(); // while tracking and sending go on
  const atKill = tracked.length;
  mark(`killed after ${atKill} events`);

  await until(() => tracked.length >= atKill + 60 && errors.length > 0, 'tracking during the outage', 15_000);
  assert.ok(errors.some((e) => e instanceof NetworkError), `background flushes fail: ${errors[0]}`);
  const failed = await client.flush().catch((e) => e);
  assert.ok(failed instanceof NetworkError, `flush() while down: ${failed}`);
  assert.ok(client.pending >= 60, `the events wait in the queue (${client.pending})`);

  mark(`flush failed with ${client.pending} events queued`);
  await server.start(); // same port, same database
  mark('restarted');
  // flush() again now that the server is back: it delivers what was queued while it was down.
  const trackedWhileDown = tracked.slice(atKill);
  await client.flush();
  const storedNow = new Set((await server.events(customer)).map((e) => e.idempotencyKey));
  assert.ok(trackedWhileDown.every((e) => storedNow.has(e.idempotencyKey)), 'flush() delivered the outage backlog');
  mark('flushed after restart');

  await until(() => tracked.length >= atKill + 150, 'tracking after the outage', 15_000);
  tracking = false;
  await tracker;
  // No more flush() calls: the background interval sends the rest.
  await until(() => client.pending === 0, 'the background flushes to catch up', 10_000);

  mark(`all ${tracked.length} delivered`);
  const stored = await server.events(customer);
  const keys = stored.map((e) => e.idempotencyKey);
  assert.equal(new Set(keys).size, keys.length, 'no event stored twice');
  assert.deepEqual(new Set(keys), new Set(tracked.map((e) => e.idempotencyKey)), 'every tracked event stored');
  assert.equal(await server.usage(customer, 'api_calls'), tracked.length, 'counted exactly once');
  await client.close();
});
