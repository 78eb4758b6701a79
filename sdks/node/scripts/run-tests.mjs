// Run the tests against a real StripeMeter server: start one shared server (the repository's
// `stripemeter` on the embedded SQLite default), run `node --test` with its URL and key in the
// environment, stop it. Tests that kill a server (the outage) start their own.
// Arguments are passed to `node --test` (e.g. test/batching.test.mjs).

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { TestServer, packageRoot } from '../test/helpers/server.mjs';

const started = Date.now();
const server = await TestServer.create({ tenant: 'node-sdk' });
console.log(`# StripeMeter test server ${server.url} (${server.bin}) ready in ${Date.now() - started} ms`);

const args = process.argv.slice(2);
const files = args.some((a) => !a.startsWith('-'))
  ? []
  : readdirSync(join(packageRoot, 'test'))
      .filter((name) => name.endsWith('.test.mjs') || name.endsWith('.test.cjs'))
      .map((name) => join('test', name));

const child = spawn(
  process.execPath,
  ['--test', '--test-concurrency=8', '--test-timeout=60000', ...args, ...files],
  {
    cwd: packageRoot,
    stdio: 'inherit',
    env: {
      ...process.env,
      STRIPEMETER_TEST_URL: server.url,
      STRIPEMETER_TEST_KEY: server.key,
      STRIPEMETER_TEST_TENANT: server.tenant,
    },
  },
);
const code = await new Promise((ok) => child.on('exit', (status, signal) => ok(status ?? (signal ? 1 : 0))));
await server.stop();
console.log(`# tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
