// An HTTP proxy in front of the real server that records every request and can misbehave on
// purpose, one planned action per request (then it forwards):
//   'forward'                      pass the request on and the answer back
//   { status, headers?, body? }    answer this itself, the server never sees the request
//   'lose-answer'                  pass the request on, then cut the connection instead of answering
//   'hang'                         never answer (the client's timeout fires)
// With no action planned, `rule(request)` (if set) picks the action from the recorded request.

import { createServer, request as httpRequest } from 'node:http';

export class FaultyProxy {
  /** Listen on a free port in front of `target` (a URL). */
  static async create(target) {
    const proxy = new FaultyProxy(target);
    await new Promise((ok) => proxy.server.listen(0, '127.0.0.1', ok));
    return proxy;
  }

  constructor(target) {
    this.target = new URL(target);
    this.plan = [];
    this.rule = null;
    this.requests = [];
    this.sockets = new Set();
    this.server = createServer((req, res) => this.#handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  get url() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  /** The recorded ingest requests' event lists. */
  get ingests() {
    return this.requests.filter((r) => r.path.startsWith('/v1/events/ingest')).map((r) => r.json.events);
  }

  /** Plan the next requests' actions (after those already planned). Not `then`: that would make it a thenable. */
  next(...actions) {
    this.plan.push(...actions);
    return this;
  }

  async #handle(req, res) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    let json = null;
    try {
      json = body.length ? JSON.parse(body.toString()) : null;
    } catch {
      // not JSON
    }
    const request = { method: req.method, path: req.url, headers: req.headers, json, at: Date.now() };
    const action = this.plan.length ? this.plan.shift() : this.rule ? this.rule(request) : 'forward';
    request.action = action;
    this.requests.push(request);
    if (action === 'hang') return; // the socket is destroyed at close()
    if (typeof action === 'object') {
      const text = action.body === undefined ? '' : JSON.stringify(action.body);
      res.writeHead(action.status, { 'content-type': 'application/json', ...(action.headers ?? {}) });
      res.end(text);
      return;
    }
    const upstream = httpRequest(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: this.target.host },
      },
      (answer) => {
        const parts = [];
        answer.on('data', (part) => parts.push(part));
        answer.on('end', () => {
          if (action === 'lose-answer') {
            req.socket.destroy(); // the server did the work; the client never hears of it
            return;
          }
          res.writeHead(answer.statusCode, answer.headers);
          res.end(Buffer.concat(parts));
        });
      },
    );
    upstream.on('error', () => req.socket.destroy());
    upstream.end(body);
  }

  async close() {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((ok) => this.server.close(ok));
  }
}
