/**
 * The StripeMeter client: tracked events wait in memory and are sent in batches in the background;
 * every request is retried on network errors, 429 and 5xx with exponential backoff and jitter.
 */

import { setTimeout as sleepFor } from 'node:timers/promises';

import {
  APIError,
  AuthenticationError,
  ClientClosedError,
  ConflictError,
  EventsRejectedError,
  NetworkError,
  NetworkTimeout,
  NotFoundError,
  PermissionDeniedError,
  QueueFullError,
  RateLimitError,
  ServerError,
  StripeMeterError,
  ValidationError,
} from './errors.js';
import { buildEvent, wirePeriodBound, wireTime } from './events.js';
import { nextDelay, parseRetryAfter, resolveRetry, type Outcome } from './retry.js';
import type {
  ClientOptions,
  EventPage,
  EventRecord,
  EventResult,
  IngestResult,
  ListEventsOptions,
  Projection,
  ProjectionOptions,
  RetryOptions,
  TrackInput,
  TrackedEvent,
  Usage,
  UsageOptions,
} from './types.js';
import { VERSION } from './version.js';

export const DEFAULT_API_URL = 'http://localhost:3000';
export const DEFAULT_BATCH_SIZE = 100;
export const MAX_BATCH_SIZE = 1000;
export const DEFAULT_FLUSH_INTERVAL = 2000;
export const DEFAULT_TIMEOUT = 10_000;
export const DEFAULT_CLOSE_TIMEOUT = 5000;
export const DEFAULT_MAX_QUEUE_SIZE = 100_000;

interface Queued {
  seq: number;
  event: TrackedEvent;
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  json?: unknown;
  /** Epoch ms after which no retry wait may end. */
  deadline?: number | null;
}

type Query = RequestOptions['query'];

const ERROR_CLASSES: Record<number, typeof APIError> = {
  400: ValidationError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  422: ValidationError,
  429: RateLimitError,
};

/** An answer saying the request holds too many events or bytes; a smaller one may pass. */
function isTooLarge(error: unknown): error is APIError {
  return error instanceof APIError && (error.status === 413 || error.code === 'batch_too_large');
}

function emptyResult(): IngestResult {
  return { accepted: 0, duplicates: 0, conflicts: 0, held: 0, rejected: 0, results: [], requestIds: [] };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The most specific `APIError` for an error answer, filled from the error envelope. */
export function errorFromAnswer(answer: Answer, results?: EventResult[]): APIError {
  const body = answer.body;
  const envelope = isObject(body) && isObject(body.error) ? body.error : null;
  const status = answer.status;
  const Class = ERROR_CLASSES[status] ?? (status >= 500 ? ServerError : APIError);
  const message =
    (envelope && typeof envelope.message === 'string' && envelope.message) ||
    answer.text.slice(0, 500) ||
    `HTTP ${status}`;
  const fields = {
    status,
    code: envelope ? String(envelope.code ?? '') : '',
    type: envelope ? String(envelope.type ?? '') : '',
    param: envelope && typeof envelope.param === 'string' ? envelope.param : null,
    details: envelope ? envelope.details : undefined,
    requestId:
      answer.headers.get('x-request-id') ??
      (isObject(body) && typeof body.requestId === 'string' ? body.requestId : null),
    retryAfter: parseRetryAfter(answer.headers.get('retry-after')),
    body,
    results,
  };
  return new Class(`${status}${fields.code ? ' ' + fields.code : ''}: ${message}`, fields);
}

// One `beforeExit` listener for every open client, removed when none is left.
const openClients = new Set<StripeMeterClient>();
let exitHooked = false;

function onBeforeExit(): void {
  for (const client of openClients) client._flushAtExit();
}

function register(client: StripeMeterClient): void {
  openClients.add(client);
  if (!exitHooked) {
    process.on('beforeExit', onBeforeExit);
    exitHooked = true;
  }
}

function unregister(client: StripeMeterClient): void {
  openClients.delete(client);
  if (exitHooked && openClients.size === 0) {
    process.removeListener('beforeExit', onBeforeExit);
    exitHooked = false;
  }
}

/**
 * A StripeMeter client. Create it with `createClient(options)`.
 *
 * `track` queues an event (with its idempotency key fixed at that moment) and returns at once;
 * the queue is sent when it holds `batchSize` events, every `flushInterval` ms, on `flush()`,
 * on `close()` and when the process is about to exit on its own (`beforeExit`).
 */
export class StripeMeterClient {
  readonly apiUrl: string;
  readonly tenantId: string | undefined;
  readonly customerId: string | undefined;
  readonly batchSize: number;
  readonly flushInterval: number | false;
  readonly timeout: number;
  readonly retry: Readonly<RetryOptions>;
  readonly closeTimeout: number;
  readonly maxQueueSize: number;
  readonly flushBeforeRead: boolean;

  readonly #apiKey: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #onError: ((error: Error) => void) | undefined;
  #queue: Queued[] = [];
  #inflight: Queued[] = [];
  #seq = 0;
  #drain: Promise<IngestResult> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  #closeDeadline: number | null = null;
  /** Aborted by `close()`: wakes retry waits begun before it so the close deadline applies. */
  readonly #wake = new AbortController();
  #exitFlushedAtSeq = -1;
  #lastDrainFailed = false;
  /** Events per request the server was found to take, when fewer than batchSize. */
  #batchLimit = Number.POSITIVE_INFINITY;

  constructor(options: ClientOptions = {}) {
    if (options == null) options = {};
    if (typeof options !== 'object' || Array.isArray(options)) {
      throw new TypeError('createClient() takes an options object');
    }
    const apiUrl = options.apiUrl || process.env.STRIPEMETER_API_URL || DEFAULT_API_URL;
    if (typeof apiUrl !== 'string') throw new TypeError('apiUrl must be a URL, e.g. http://localhost:3000');
    const url = new URL(apiUrl); // throws on a malformed URL
    this.apiUrl = url.toString().replace(/\/+$/, '');
    this.tenantId = options.tenantId || undefined;
    this.customerId = options.customerId || undefined;
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1 || this.batchSize > MAX_BATCH_SIZE) {
      throw new RangeError(`batchSize must be an integer between 1 and ${MAX_BATCH_SIZE}`);
    }
    this.flushInterval = options.flushInterval ?? DEFAULT_FLUSH_INTERVAL;
    if (this.flushInterval !== false && !(this.flushInterval > 0)) {
      throw new RangeError('flushInterval must be a positive number of ms (or false)');
    }
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (!(this.timeout > 0)) throw new RangeError('timeout must be a positive number of ms');
    this.retry = Object.freeze(resolveRetry(options.retry));
    this.closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    this.maxQueueSize = options.maxQueueSize ?? DEFAULT_MAX_QUEUE_SIZE;
    this.flushBeforeRead = options.flushBeforeRead ?? true;
    this.#apiKey = (options.apiKey ?? process.env.STRIPEMETER_API_KEY) || undefined;
    this.#headers = { ...(options.headers ?? {}) };
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') throw new TypeError('no fetch: use Node.js 20+ or pass options.fetch');
    this.#fetch = fetchImpl;
    this.#onError = options.onError;
    if (this.flushInterval !== false) {
      this.#timer = setInterval(() => this.#kick(), this.flushInterval);
      this.#timer.unref(); // never keeps the process alive
    }
    if (options.flushOnExit ?? true) register(this);
  }

  /** Events tracked and not yet answered by the server (queued or being sent). */
  get pending(): number {
    return this.#queue.length + this.#inflight.length;
  }

  /** The events not yet answered by the server, oldest first (e.g. to save them after a failed `close()`). */
  pendingEvents(): TrackedEvent[] {
    return [...this.#inflight, ...this.#queue].map((q) => q.event);
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queue one usage event and return it with its idempotency key.
   *
   * Resolves as soon as the event is queued; it is sent in the background. Rejects with
   * `TypeError` for invalid input, `ClientClosedError` after `close()`, `QueueFullError` when
   * `maxQueueSize` events are waiting.
   */
  async track(input: TrackInput): Promise<TrackedEvent> {
    return this.#enqueue([buildEvent(input, this.customerId)])[0]!;
  }

  /** Queue several events at once (all or none: one invalid event rejects the call and queues nothing). */
  async trackMany(inputs: readonly TrackInput[]): Promise<TrackedEvent[]> {
    if (!Array.isArray(inputs)) throw new TypeError('trackMany() takes an array of events');
    return this.#enqueue(inputs.map((input) => buildEvent(input, this.customerId)));
  }

  #enqueue(events: TrackedEvent[]): TrackedEvent[] {
    if (this.#closed) throw new ClientClosedError('the client is closed; create a new one to track more');
    if (this.pending + events.length > this.maxQueueSize) {
      throw new QueueFullError(
        `${this.pending} events are waiting to be sent (maxQueueSize ${this.maxQueueSize}); not queued`,
      );
    }
    for (const event of events) this.#queue.push({ seq: ++this.#seq, event });
    if (this.#queue.length >= this.batchSize) this.#kick(true);
    return events;
  }

  /**
   * Send every event tracked so far and resolve with what the server said of them.
   *
   * Events a background send delivers meanwhile are waited for, and their results are not in the
   * answer, which covers the requests this call sent. Rejects with `NetworkError`, `ServerError`,
   * `RateLimitError`… when the retries run out (the events stay queued: call `flush()` again),
   * and with `EventsRejectedError` when the server refused some events (those are dropped; the
   * others were sent).
   */
  async flush(): Promise<IngestResult> {
    if (this.#closing) {
      await this.#closing;
      return emptyResult();
    }
    const target = this.#seq;
    // Done when every event tracked before this call was answered, by this call or by a
    // background send (only one send runs at a time; a newer one is not waited for).
    while (this.#oldestPending() <= target) {
      if (this.#drain) {
        await this.#drain.catch(() => undefined);
        continue;
      }
      return this.#startDrain(target, null);
    }
    return emptyResult();
  }

  #oldestPending(): number {
    return this.#inflight[0]?.seq ?? this.#queue[0]?.seq ?? Number.POSITIVE_INFINITY;
  }

  /**
   * Flush what is queued (retry waits limited to `closeTimeout`), stop the background timer and
   * refuse further calls. Rejects with the flush's error if events could not be delivered; they
   * are then lost unless read from `pendingEvents()`. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closeDeadline = Date.now() + this.closeTimeout;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#wake.abort();
    this.#closing = (async () => {
      try {
        while (this.#drain) await this.#drain.catch(() => undefined);
        if (this.#queue.length > 0) await this.#startDrain(this.#seq, this.#closeDeadline);
      } finally {
        unregister(this);
      }
    })();
    return this.#closing;
  }

  /** @internal Called at `beforeExit`: one flush attempt per batch of new events, so a dead server cannot hold the exit. */
  _flushAtExit(): void {
    if (this.#closed || this.#drain || this.#queue.length === 0 || this.#exitFlushedAtSeq === this.#seq) return;
    this.#exitFlushedAtSeq = this.#seq;
    const count = this.pending;
    this.#startDrain(this.#seq, Date.now() + this.closeTimeout).catch((error: unknown) => {
      const lost = this.pending;
      this.#report(
        new StripeMeterError(
          `flush at process exit failed; ${lost} of ${count} events were not delivered: ${(error as Error).message}`,
          { cause: error },
        ),
      );
    });
  }

  /** A customer's usage this period (`GET /v1/usage/current`). */
  async getUsage(customerRef?: string, options: UsageOptions = {}): Promise<Usage> {
    await this.#beforeRead();
    const ref = this.#customer(customerRef);
    return (await this.#call('GET', '/v1/usage/current', {
      query: { customerRef: ref, period: options.period },
    })) as Usage;
  }

  /** What the customer's invoice will say (`POST /v1/usage/projection`). */
  async getProjection(customerRef?: string, options: ProjectionOptions = {}): Promise<Projection> {
    await this.#beforeRead();
    const json: Record<string, unknown> = { customerRef: this.#customer(customerRef) };
    if (this.tenantId) json.tenantId = this.tenantId;
    const { periodStart, periodEnd, ...rest } = options;
    if (periodStart != null) json.periodStart = wirePeriodBound(periodStart);
    if (periodEnd != null) json.periodEnd = wirePeriodBound(periodEnd);
    for (const [name, value] of Object.entries(rest)) if (value != null) json[name] = value;
    return (await this.#call('POST', '/v1/usage/projection', { json })) as Projection;
  }

  /** One page of the tenant's events, newest first (`GET /v1/events`); follow `nextCursor`. */
  async listEvents(options: ListEventsOptions = {}): Promise<EventPage> {
    await this.#beforeRead();
    const { from, to, ...rest } = options;
    return (await this.#call('GET', '/v1/events', {
      query: {
        ...rest,
        from: from == null ? undefined : wireTime(from),
        to: to == null ? undefined : wireTime(to),
      },
    })) as EventPage;
  }

  /** Every event matching the filters, page after page. */
  async *iterEvents(options: Omit<ListEventsOptions, 'cursor'> = {}): AsyncGenerator<EventRecord> {
    let cursor: string | undefined;
    do {
      const page = await this.listEvents({ ...options, cursor });
      yield* page.events;
      cursor = page.hasMore && page.nextCursor ? page.nextCursor : undefined;
    } while (cursor);
  }

  // ---- sending events -------------------------------------------------------------------------

  /** Start a background drain unless one runs; `full`: only when a batch is full. */
  #kick(full = false): void {
    if (this.#drain || this.#closed || this.#queue.length === 0) return;
    let target = this.#seq;
    if (full) {
      // The size trigger sends whole batches only; the interval (or a flush) sends the rest.
      const whole = Math.floor(this.#queue.length / this.batchSize) * this.batchSize;
      if (whole === 0) return;
      target = this.#queue[whole - 1]!.seq;
    }
    this.#startDrain(target, null).catch((error: unknown) => this.#report(error));
  }

  #startDrain(target: number, deadline: number | null): Promise<IngestResult> {
    const drain = this.#drainQueue(target, deadline);
    this.#drain = drain;
    const done = (): void => {
      if (this.#drain === drain) this.#drain = null;
      // More full batches arrived meanwhile: send them now, unless the server just failed us
      // (then the interval timer retries, so a dead server is not hammered).
      if (!this.#lastDrainFailed && this.#queue.length >= this.batchSize) this.#kick(true);
    };
    drain.then(done, done);
    return drain;
  }

  /** Send queued events with `seq <= target`, batch by batch. */
  async #drainQueue(target: number, deadline: number | null): Promise<IngestResult> {
    const total = emptyResult();
    const rejected: Array<[EventResult, TrackedEvent]> = [];
    while (this.#queue.length > 0 && this.#queue[0]!.seq <= target) {
      let count = 0;
      const limit = Math.min(this.batchSize, this.#batchLimit);
      while (count < this.#queue.length && count < limit && this.#queue[count]!.seq <= target) count++;
      const batch = this.#queue.splice(0, count);
      this.#inflight = batch;
      let answered: Set<number>;
      try {
        answered = await this.#sendBatch(batch, deadline, total, rejected);
      } catch (error) {
        this.#queue.unshift(...batch);
        this.#inflight = [];
        if (isTooLarge(error)) {
          if (batch.length > 1) {
            // The server takes fewer events (or bytes) per request than batchSize: send halves, from now on.
            this.#batchLimit = Math.max(1, Math.floor(batch.length / 2));
            continue;
          }
          // One event alone is too large: it can never be accepted, so it is dropped as rejected
          // rather than blocking the queue.
          const [only] = this.#queue.splice(0, 1);
          const result: EventResult = {
            index: 0,
            status: 'rejected',
            idempotencyKey: only!.event.idempotencyKey,
            error: { field: 'events', code: error.code, message: error.message },
          };
          total.rejected += 1;
          total.results.push(result);
          rejected.push([result, only!.event]);
          continue;
        }
        this.#lastDrainFailed = true;
        throw error;
      }
      this.#inflight = [];
      // An event without a result in the answer (never expected) stays queued for the next flush.
      const unanswered = batch.filter((q) => !answered.has(q.seq));
      if (unanswered.length > 0) {
        this.#queue.unshift(...unanswered);
        break;
      }
    }
    this.#lastDrainFailed = false;
    if (rejected.length > 0) {
      const [first] = rejected[0]!;
      const why = first.error?.message ?? first.reason ?? 'rejected';
      const more = rejected.length > 1 ? ` (and ${rejected.length - 1} more)` : '';
      throw new EventsRejectedError(`the server rejected ${rejected.length} event(s): ${why}${more}`, {
        results: rejected.map(([r]) => r),
        events: rejected.map(([, e]) => e),
        result: total,
      });
    }
    return total;
  }

  /** One ingest request; adds its results to `total`; returns the seqs the server answered for. */
  async #sendBatch(
    batch: Queued[],
    deadline: number | null,
    total: IngestResult,
    rejected: Array<[EventResult, TrackedEvent]>,
  ): Promise<Set<number>> {
    const json: Record<string, unknown> = { events: batch.map((q) => q.event) };
    if (this.tenantId) json.tenantId = this.tenantId;
    const answer = await this.#request('POST', '/v1/events/ingest', { json, deadline });
    const body = answer.body;
    const listed = isObject(body) && Array.isArray(body.results);
    if (!(listed && (answer.status === 200 || answer.status === 400))) {
      throw errorFromAnswer(answer);
    }
    const answered = new Set<number>();
    for (const key of ['accepted', 'duplicates', 'conflicts', 'held', 'rejected'] as const) {
      const n = body[key];
      if (typeof n === 'number') total[key] += n;
    }
    if (typeof body.requestId === 'string') total.requestIds.push(body.requestId);
    for (const item of body.results as unknown[]) {
      if (!isObject(item) || typeof item.index !== 'number') continue;
      const queued = batch[item.index];
      if (!queued) continue;
      const result = { ...item, idempotencyKey: queued.event.idempotencyKey } as EventResult;
      answered.add(queued.seq);
      total.results.push(result);
      if (result.status === 'rejected') rejected.push([result, queued.event]);
    }
    return answered;
  }

  // ---- requests -------------------------------------------------------------------------------

  async #beforeRead(): Promise<void> {
    if (this.#closed) throw new ClientClosedError('the client is closed');
    if (!this.flushBeforeRead || this.pending === 0) return;
    try {
      await this.flush();
    } catch (error) {
      this.#report(error); // the read goes on; a dead server makes it fail on its own
    }
  }

  #customer(customerRef: string | undefined): string {
    const ref = customerRef ?? this.customerId;
    if (typeof ref !== 'string' || ref === '') {
      throw new TypeError('customerRef is required (or set customerId on the client)');
    }
    return ref;
  }

  /** A request whose answer must be 2xx: its JSON body, or the error. */
  async #call(method: string, path: string, options: RequestOptions): Promise<unknown> {
    if (this.#closed) throw new ClientClosedError('the client is closed');
    const answer = await this.#request(method, path, options);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    throw errorFromAnswer(answer);
  }

  #url(path: string, query: Query): string {
    const params = new URLSearchParams();
    if (this.tenantId) params.set('tenantId', this.tenantId);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const text = params.toString();
    return this.apiUrl + path + (text ? `?${text}` : '');
  }

  /** Send with retries; resolves with the last answer (any status), rejects with a `NetworkError`. */
  async #request(method: string, path: string, options: RequestOptions): Promise<Answer> {
    const url = this.#url(path, method === 'GET' ? options.query : undefined);
    const headers: Record<string, string> = {
      'User-Agent': `stripemeter-node/${VERSION}`,
      Accept: 'application/json',
      ...this.#headers,
    };
    if (this.#apiKey) headers.Authorization = `Bearer ${this.#apiKey}`;
    let payload: string | undefined;
    if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(options.json);
    }
    for (let attempt = 1; ; attempt++) {
      let outcome: Outcome;
      let answer: Answer | null = null;
      try {
        const response = await this.#fetch(url, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.timeout),
        });
        const text = await response.text();
        let body: unknown = text;
        if (text !== '') {
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
        }
        answer = { status: response.status, headers: response.headers, body, text };
        outcome = { status: response.status, retryAfter: parseRetryAfter(response.headers.get('retry-after')) };
      } catch (error) {
        outcome = { error };
      }
      const deadlines = [options.deadline, this.#closeDeadline].filter((d): d is number => d != null);
      const deadline = deadlines.length ? Math.min(...deadlines) : null;
      const delay = nextDelay(this.retry, outcome, attempt, Math.random(), deadline);
      if (delay === null) {
        if (answer) return answer;
        throw networkError((outcome as { error: unknown }).error, method, url, attempt);
      }
      // Waits begun before close() are cut short by it; the close deadline then bounds the rest.
      const signal = this.#closed ? undefined : this.#wake.signal;
      await sleepFor(delay, undefined, { signal }).catch(() => undefined);
    }
  }

  #report(error: unknown): void {
    const err = error instanceof Error ? error : new StripeMeterError(String(error));
    if (this.#onError) {
      try {
        this.#onError(err);
      } catch (callbackError) {
        console.warn('stripemeter: the onError callback threw', callbackError);
      }
      return;
    }
    if (err instanceof EventsRejectedError) console.warn(`stripemeter: ${err.message}`);
    else console.warn(`stripemeter: sending events failed, they stay queued: ${err.message}`);
  }
}

function networkError(error: unknown, method: string, url: string, attempts: number): NetworkError {
  const err = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  const where = `${method} ${url.split('?')[0]}`;
  const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') {
    return new NetworkTimeout(`no answer in time to ${where}${tries}`, { cause: error });
  }
  const detail = err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(error);
  return new NetworkError(`the server could not be reached (${where}${tries}): ${detail}`, { cause: error });
}

/** Create a client; the options are those of `StripeMeterClient`. */
export function createClient(options: ClientOptions = {}): StripeMeterClient {
  return new StripeMeterClient(options);
}
