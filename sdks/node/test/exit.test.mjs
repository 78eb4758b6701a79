// Flush at process exit: a program that tracks and simply ends delivers its events (beforeExit);
// the background timer never keeps a process alive; a dead server cannot hold the exit for long.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { packageRoot, sharedServer, uniqueCustomer } from './helpers/server.mjs';

const run = promisify(execFile);

let server;
before(async () => {
  server = await sharedServer();
});
after(() => server.stop());

/** Run a program in a child Node.js (`module`: ESM, else CommonJS); resolves with its output and time. */
async function child(code, { module = true, env = {} } = {}) {
  const started = Date.now();
  const args = module ? ['--input-type=module', '-e', code] : ['-e', code];
  const { stdout, stderr } = await run(process.execPath, args, {
    cwd: packageRoot,
    env: { ...process.env, API_URL: server.url, API_KEY: server.key, ...env },
    timeout: 30_000,
  });
  return { stdout, stderr, ms: Date.now() - started };
}

test('an ES module program that tracks and ends delivers its events at exit', async () => {
  const customer = uniqueCustomer('exit_esm');
  const { ms } = await child(
    `import { createClient } from '@stripemeter/sdk-node';
     const client = createClient({ apiUrl: process.env.API_URL, apiKey: process.env.API_KEY, flushInterval: 60000 });
     for (let i = 0; i < 3; i++) await client.track({ metric: 'api_calls', customerRef: process.env.CUSTOMER, quantity: 2 });`,
    { env: { CUSTOMER: customer } },
  );
  assert.equal(await server.usage(customer, 'api_calls'), 6);
  assert.ok(ms < 10_000, `the 60 s flush timer did not hold the process (${ms} ms)`);
});

test('a CommonJS program that tracks and ends delivers its events at exit', async () => {
  const customer = uniqueCustomer('exit_cjs');
  await child(
    `const { createClient } = require('@stripemeter/sdk-node');
     const client = createClient({ apiUrl: process.env.API_URL, apiKey: process.env.API_KEY });
     client.trackMany([{ metric: 'api_calls', customerRef: process.env.CUSTOMER, quantity: 1 },
                       { metric: 'api_calls', customerRef: process.env.CUSTOMER, quantity: 1 }]);`,
    { module: false, env: { CUSTOMER: customer } },
  );
  assert.equal(await server.usage(customer, 'api_calls'), 2);
});

test('process.exit() skips beforeExit: close() first delivers the events', async () => {
  const customer = uniqueCustomer('exit_close');
  await child(
    `import { createClient } from '@stripemeter/sdk-node';
     const client = createClient({ apiUrl: process.env.API_URL, apiKey: process.env.API_KEY });
     await client.track({ metric: 'api_calls', customerRef: process.env.CUSTOMER, quantity: 5 });
     await client.close();
     process.exit(0);`,
    { env: { CUSTOMER: customer } },
  );
  assert.equal(await server.usage(customer, 'api_calls'), 5);
});

test('with the server unreachable the exit waits at most about closeTimeout and says what was lost', async () => {
  const { stderr, ms } = await child(
    `import { createClient } from '@stripemeter/sdk-node';
     const client = createClient({ apiUrl: 'http://127.0.0.1:9', closeTimeout: 500, retry: { backoff: 100 } });
     await client.track({ metric: 'api_calls', customerRef: 'cus_x', quantity: 1 });`,
  );
  assert.match(stderr, /1 of 1 events were not delivered/);
  assert.ok(ms < 8000, `exit took ${ms} ms`);
});
