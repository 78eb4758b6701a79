// Run the tests against a real StripeMeter server: start one shared server (the repository's
// `stripemeter` on the embedded SQLite default), prepare the database of the outage test's own
// server, then run `node --test` with their details in the environment, and stop them.
// `--build` builds the package meanwhile (npm test). Other arguments go to `node --test`
// (e.g. test/batching.test.mjs).

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { TestServer, packageRoot } from '../test/helpers/server.mjs';

function exec(args) {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, args, { cwd: packageRoot, stdio: 'inherit' });
    child.on('exit', (code, signal) => (code === 0 ? ok() : fail(new Error(`${args.join(' ')}: ${code ?? signal}`))));
  });
}

const started = Date.now();
const argv = process.argv.slice(2);
const build = argv.includes('--build');
const args = argv.filter((a) => a !== '--build');

const [server, outage] = await Promise.all([
  TestServer.create({ tenant: 'node-sdk' }),
  TestServer.prepare({ tenant: 'node-sdk-outage' }),
  build ? exec([join('scripts', 'build.mjs')]) : null,
]).catch((error) => {
  console.error(error.message);
  process.exit(1);
});
console.log(`# StripeMeter test server ${server.url} (${server.bin}) ready in ${Date.now() - started} ms`);

const files = args.some((a) => !a.startsWith('-'))
  ? []
  : readdirSync(join(packageRoot, 'test'))
      .filter((name) => name.endsWith('.test.mjs') || name.endsWith('.test.cjs'))
      .map((name) => join('test', name));

const child = spawn(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=8', '--test-timeout=60000', ...args, ...files],
  {
    cwd: packageRoot,
    stdio: 'inherit',
    env: {
      ...process.env,
      STRIPEMETER_TEST_URL: server.url,
      STRIPEMETER_TEST_KEY: server.key,
      STRIPEMETER_TEST_TENANT: server.tenant,
      STRIPEMETER_TEST_OUTAGE: JSON.stringify(outage),
    },
  },
);
const code = await new Promise((ok) => child.on('exit', (status, signal) => ok(status ?? (signal ? 1 : 0))));
await Promise.all([server.stop(), outage.stop()]);
console.log(`# tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
