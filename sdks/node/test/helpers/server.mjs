// A real StripeMeter server for the tests: the repository's `stripemeter` on the embedded SQLite
// default, in a temporary folder, on a free port. It can be killed and started again on the same
// port and database (an outage).
//
// The executable: $STRIPEMETER_BIN, else .venv/bin/stripemeter of the first folder above this one
// that has it (the repository root), else `stripemeter` on PATH.

import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const packageRoot = resolve(here, '..', '..');

export function stripemeterBin() {
  if (process.env.STRIPEMETER_BIN) return process.env.STRIPEMETER_BIN;
  const exe = process.platform === 'win32' ? join('Scripts', 'stripemeter.exe') : join('bin', 'stripemeter');
  for (let dir = packageRoot; ; dir = dirname(dir)) {
    const candidate = join(dir, '.venv', exe);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return 'stripemeter';
  }
}

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

const live = new Set();
process.on('exit', () => {
  for (const server of live) server.killNow();
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const server of live) server.killNow();
    process.exit(130);
  });
}

export class TestServer {
  /** Migrate a fresh database, mint an admin key for `tenant`, start serving; resolves when ready. */
  static async create({ tenant = 'node-sdk' } = {}) {
    const server = await TestServer.prepare({ tenant });
    await server.start();
    return server;
  }

  /** Migrate a fresh database and mint the key, without serving yet. */
  static async prepare({ tenant = 'node-sdk' } = {}) {
    const server = new TestServer(tenant);
    await server.#setUp();
    return server;
  }

  /** A server prepared by another process (`toJSON()`); it is started and killed here. */
  static fromJSON(text) {
    const { tenant, dir, key } = JSON.parse(text);
    return new TestServer(tenant, { dir, key });
  }

  constructor(tenant, { dir = null, key = null } = {}) {
    this.tenant = tenant;
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'stripemeter-node-sdk-'));
    this.databaseUrl = `sqlite:///${join(this.dir, 'x.db')}`;
    this.bin = stripemeterBin();
    this.child = null;
    this.port = null;
    this.key = key;
  }

  toJSON() {
    return { tenant: this.tenant, dir: this.dir, key: this.key };
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get env() {
    const env = { ...process.env, DATABASE_URL: this.databaseUrl };
    delete env.STRIPEMETER_PORT;
    delete env.STRIPEMETER_HOST;
    return env;
  }

  async #setUp() {
    const options = { env: this.env, cwd: this.dir, timeout: 60_000 };
    try {
      await run(this.bin, ['migrate'], options);
      const { stdout } = await run(
        this.bin,
        ['keys', 'create', '--tenant', this.tenant, '--scopes', 'admin', '--json'],
        options,
      );
      this.key = JSON.parse(stdout).key;
    } catch (error) {
      throw new Error(`could not set up a StripeMeter server with ${this.bin}: ${error.stderr || error.message}`);
    }
    if (!this.key) throw new Error('stripemeter keys create printed no key');
  }

  /** Start serving (on the same port and database after a kill); resolves when /health/ready answers 200. */
  async start() {
    if (this.child) throw new Error('already running');
    this.port ??= await freePort();
    const log = openSync(join(this.dir, 'serve.log'), 'a');
    // Its own process group, so a kill reaches every process it starts.
    this.child = spawn(this.bin, ['serve', '--host', '127.0.0.1', '--port', String(this.port), '--workers', '1'], {
      env: this.env,
      cwd: this.dir,
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    live.add(this);
    const child = this.child;
    let exited = null;
    child.once('exit', (code, signal) => {
      exited = { code, signal };
    });
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline) {
      if (exited) break;
      try {
        const response = await fetch(`${this.url}/health/ready`, { signal: AbortSignal.timeout(1000) });
        await response.arrayBuffer();
        if (response.ok) return;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    const why = exited ? `it exited (${JSON.stringify(exited)})` : 'it was not ready in 40 s';
    await this.kill();
    throw new Error(`StripeMeter server on port ${this.port}: ${why}\n${this.log()}`);
  }

  log() {
    try {
      return readFileSync(join(this.dir, 'serve.log'), 'utf8').slice(-4000);
    } catch {
      return '';
    }
  }

  killNow() {
    if (!this.child) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** SIGKILL the server (no graceful shutdown: an outage) and wait until it is gone. */
  async kill() {
    const child = this.child;
    if (!child) return;
    const gone = child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise((ok) => child.once('exit', ok));
    this.killNow();
    await gone;
    this.child = null;
    live.delete(this);
  }

  /** Kill the server and delete its folder. */
  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** An authenticated GET of the server's JSON API, bypassing the SDK. */
  async get(path) {
    const response = await fetch(this.url + path, { headers: { Authorization: `Bearer ${this.key}` } });
    const body = await response.json();
    if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  }

  /** Every event of a customer in the ledger, all pages. */
  async events(customerRef) {
    const all = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ customerRef, limit: '1000' });
      if (cursor) query.set('cursor', cursor);
      const page = await this.get(`/v1/events?${query}`);
      all.push(...page.events);
      cursor = page.hasMore ? page.nextCursor : null;
    } while (cursor);
    return all;
  }

  /** The customer's current-period value of a metric (0 when it has none). */
  async usage(customerRef, metric) {
    const body = await this.get(`/v1/usage/current?customerRef=${encodeURIComponent(customerRef)}`);
    const found = body.metrics.find((m) => m.metric === metric);
    return found ? Number(found.value) : 0;
  }
}

/**
 * The server shared by the tests of one run: the one scripts/run-tests.mjs started (its URL and key
 * in the environment), or one started here when a test file runs on its own.
 */
let shared = null;
export async function sharedServer() {
  if (process.env.STRIPEMETER_TEST_URL && process.env.STRIPEMETER_TEST_KEY) {
    const server = new ExternalServer(process.env.STRIPEMETER_TEST_URL, process.env.STRIPEMETER_TEST_KEY);
    return server;
  }
  shared ??= TestServer.create();
  return shared;
}

/** A server started elsewhere: the reading helpers of TestServer, no process control. */
class ExternalServer {
  constructor(url, key) {
    this.urlText = url;
    this.key = key;
    this.tenant = process.env.STRIPEMETER_TEST_TENANT || 'node-sdk';
  }

  get url() {
    return this.urlText;
  }

  async stop() {}
}
for (const name of ['get', 'events', 'usage']) {
  ExternalServer.prototype[name] = TestServer.prototype[name];
}

/** A customer reference no other test uses. */
export function uniqueCustomer(label) {
  return `cus_${label}_${Math.random().toString(36).slice(2, 10)}`;
}
