// `npm pack` makes an installable package: install the tarball in an empty project, then require()
// it, import it, and type-check a TypeScript consumer of each module format against its declarations.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { packageRoot } from './helpers/server.mjs';

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('npm pack produces a package that installs, requires, imports and type-checks', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stripemeter-node-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const quiet = { cwd: packageRoot, env: { ...process.env, npm_config_update_notifier: 'false' } };

  // The build ran before the tests (npm test); --ignore-scripts keeps prepack from rebuilding under them.
  const { stdout } = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], quiet);
  const [packed] = JSON.parse(stdout);
  const files = packed.files.map((f) => f.path).sort();
  for (const needed of [
    'package.json', 'README.md', 'dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/index.js',
    'dist/cjs/index.d.ts', 'dist/cjs/package.json', 'dist/esm/package.json',
  ]) {
    assert.ok(files.includes(needed), `${needed} is in the package`);
  }
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/')), files.join(', '));

  const app = join(dir, 'app');
  await run('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, version: '1.0.0' }));
  await run(npm, ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', join(dir, packed.filename)], { ...quiet, cwd: app });

  const probe = `const c = sdk.createClient({ apiUrl: 'http://127.0.0.1:9', apiKey: 'k', flushInterval: false });
    if (typeof c.track !== 'function' || typeof c.getProjection !== 'function') throw new Error('bad API');
    if (!(new sdk.EventsRejectedError('x', { results: [], events: [] }) instanceof sdk.ValidationError)) throw new Error('bad errors');
    c.close().then(() => console.log('ok ' + sdk.VERSION));`;
  const required = await run(process.execPath, ['-e', `const sdk = require('@stripemeter/sdk-node');\n${probe}`], { cwd: app });
  assert.equal(required.stdout.trim(), `ok ${packed.version}`);
  const imported = await run(
    process.execPath,
    ['--input-type=module', '-e', `import * as sdk from '@stripemeter/sdk-node';\n${probe}`],
    { cwd: app },
  );
  assert.equal(imported.stdout.trim(), `ok ${packed.version}`);

  const consumer = `import { createClient, EventsRejectedError, type Usage, type TrackedEvent } from '@stripemeter/sdk-node';
const client = createClient({ apiUrl: 'http://localhost:3000', tenantId: 't', customerId: 'cus_ABC123', apiKey: 'k' });
export async function main(): Promise<number> {
  const event: TrackedEvent = await client.track({ metric: 'api_calls', customerRef: 'cus_ABC123', quantity: 100, meta: { endpoint: '/v1/search' } });
  const usage: Usage = await client.getUsage('cus_ABC123');
  const projection = await client.getProjection('cus_ABC123');
  try { await client.flush(); } catch (error) { if (error instanceof EventsRejectedError) return error.results.length; }
  await client.close();
  return usage.metrics.length + event.idempotencyKey.length + (projection.total ?? 0);
}
`;
  writeFileSync(join(app, 'consumer.mts'), consumer);
  writeFileSync(join(app, 'consumer.cts'), consumer);
  // A Node.js consumer has @types/node; this package's own copy serves.
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      noEmit: true, strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022',
      typeRoots: [join(packageRoot, 'node_modules', '@types')], types: ['node'], skipLibCheck: true,
    },
    files: ['consumer.mts', 'consumer.cts'],
  }));
  const tsc = createRequire(join(packageRoot, 'package.json')).resolve('typescript/bin/tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((error) => assert.fail(`the declarations do not type-check:\n${error.stdout}${error.stderr}`));
});
