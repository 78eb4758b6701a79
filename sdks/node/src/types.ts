/**
 * Shapes of what the client takes and what the server answers.
 *
 * Answers are plain JSON objects as the server sent them, typed with the fields StripeMeter
 * documents; a field the server adds later is still there (every answer type is open).
 * Quantities and amounts in answers are JavaScript numbers: exact up to 2^53 and for the usual
 * decimals, rounded beyond (send quantities as strings to keep them exact on the way in).
 */

/** What the server decided for one event of a batch. */
export type EventStatus = 'accepted' | 'duplicate' | 'conflict' | 'held' | 'rejected';

/** A quantity: a number, a decimal string (`"0.25"`, kept exact) or a bigint. */
export type Quantity = number | string | bigint;

/** A time: a `Date`, an RFC 3339 string with an offset, or epoch milliseconds. */
export type TimeInput = Date | string | number;

/** The arguments of `client.track()`. */
export interface TrackInput {
  /** The metric name, e.g. `"api_calls"`. */
  metric: string;
  /** The customer; defaults to the client's `customerId`. */
  customerRef?: string;
  /** How much was used; must be zero or more. */
  quantity: Quantity;
  /** When it was used; default: now (at `track` time). */
  ts?: TimeInput;
  /** Free JSON stored with the event. */
  meta?: Record<string, unknown>;
  /** What was used (a seat, a file…), for `last`/`max` style metrics. */
  resourceId?: string;
  /** Your own key (at most 255 characters); default: a fresh `sdk_<uuid>` key. */
  idempotencyKey?: string;
}

/** An event as tracked, in its wire form: its idempotency key is fixed, so every resend is a duplicate. */
export interface TrackedEvent {
  readonly metric: string;
  readonly customerRef: string;
  readonly quantity: string | number;
  readonly ts: string;
  readonly idempotencyKey: string;
  readonly source: 'sdk';
  readonly resourceId?: string;
  readonly meta?: Readonly<Record<string, unknown>>;
}

/** Why the server rejected one event. */
export interface EventError {
  field: string;
  code: string;
  message: string;
}

/** The server's answer for one event. `index` is the event's position in its request. */
export interface EventResult {
  index: number;
  status: EventStatus;
  /** Always set by the client (the server omits it for some rejected events). */
  idempotencyKey?: string;
  eventId?: number;
  /** Why a duplicate/conflict/held event was not counted, e.g. `"idempotency_key_reused"`. */
  reason?: string;
  /** Set when `status` is `"rejected"`. */
  error?: EventError;
}

/** Totals and per-event results of the ingest requests of one flush. */
export interface IngestResult {
  accepted: number;
  duplicates: number;
  conflicts: number;
  held: number;
  rejected: number;
  results: EventResult[];
  /** The `requestId` of each request sent, in order. */
  requestIds: string[];
}

/** One metric of a customer's usage in a period (`GET /v1/usage/current`). */
export interface UsageMetric {
  metric: string;
  aggregation: 'sum' | 'max' | 'last' | 'count' | (string & {});
  /** The billing value under the metric's aggregation. */
  value: number;
  sum: number;
  max: number | null;
  last: number | null;
  count: number;
  unit: string | null;
  watermark: string | null;
  updatedAt: string | null;
  [field: string]: unknown;
}

/** A customer's usage in a billing period (`GET /v1/usage/current`). */
export interface Usage {
  customerRef: string;
  period: { start: string; end: string };
  metrics: UsageMetric[];
  [field: string]: unknown;
}

/** Amounts of an invoice, in major units of `currency` (e.g. dollars). */
export interface InvoiceAmounts {
  subtotal: number;
  credits: number;
  tax: number;
  total: number;
  [field: string]: unknown;
}

/** One tier of a priced line. */
export interface ProjectionTier {
  [field: string]: unknown;
}

/** One metric of a cost projection: usage and cost so far, and projected to the period end. */
export interface ProjectionLine {
  metric: string;
  aggregation: string;
  unit: string | null;
  /** Usage so far. */
  quantity: number;
  /** False when the metric has no price; `reason` and `message` say why. */
  priced: boolean;
  priceSource: string | null;
  priceId: string | null;
  reason?: string | null;
  message?: string | null;
  /** Cost so far in minor units (cents), and `total` in major units; null when unpriced. */
  amount: number | null;
  total: number | null;
  unitPrice: number | null;
  tiers: ProjectionTier[];
  projected: {
    quantity: number;
    method: 'run_rate' | 'current_value' | 'actual' | 'not_started' | (string & {});
    amount: number | null;
    total: number | null;
    tiers: ProjectionTier[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** What the customer's invoice will say (`POST /v1/usage/projection`). */
export interface Projection extends InvoiceAmounts {
  customerRef: string;
  periodStart: string;
  periodEnd: string;
  asOf: string;
  /** Lower-case ISO code, or null when no metric has a price. */
  currency: string | null;
  projection: { method: string; description: string; windowSeconds: number; window: { start: string; end: string } | null };
  lineItems: ProjectionLine[];
  unpricedMetrics: string[];
  /** True when every metric has a price. */
  complete: boolean;
  /** The invoice at the period end, by the projection method. */
  projected: InvoiceAmounts;
  freshness: { lastUpdate: string | null; stalenessSeconds: number | null; pendingPushes: number; [field: string]: unknown };
}

/** Options of `getUsage`. */
export interface UsageOptions {
  /** A calendar month `YYYY-MM`; default: the current period. */
  period?: string;
}

/** A credit drawn before tax in a projection. */
export interface ProjectionCredit {
  /** Major units of the invoice currency. */
  amount: number | string;
  reason?: string;
  expiresAt?: string;
}

/** Options of `getProjection`; default: the current period. */
export interface ProjectionOptions {
  /** A calendar month `YYYY-MM`. */
  period?: string;
  /** The start of a billing period: `YYYY-MM-DD`, RFC 3339, or a Date (sent as RFC 3339). */
  periodStart?: string | Date;
  /** Its end (exclusive). */
  periodEnd?: string | Date;
  /** The run-rate window in seconds (server default: 7 days). */
  windowSeconds?: number;
  /** Exclusive tax, percent. */
  taxRate?: number | string;
  credits?: ProjectionCredit[];
}

/** An event as stored in the ledger (`GET /v1/events`). */
export interface EventRecord {
  id: number;
  idempotencyKey: string;
  tenantId: string;
  metric: string;
  customerRef: string;
  resourceId: string | null;
  quantity: number;
  ts: string;
  periodStart: string;
  status: string;
  source: string;
  meta: Record<string, unknown>;
  receivedAt: string;
  [field: string]: unknown;
}

/** Filters of `listEvents`. Times are RFC 3339; the range is `[from, to)`. */
export interface ListEventsOptions {
  customerRef?: string;
  metric?: string;
  status?: 'accepted' | 'held' | 'approved' | 'dismissed';
  source?: string;
  from?: string | Date;
  to?: string | Date;
  /** Events per page, 1–1000 (server default 100). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of `GET /v1/events`, newest first. */
export interface EventPage {
  events: EventRecord[];
  hasMore: boolean;
  nextCursor: string | null;
}

/** When and how long to retry. Times in milliseconds. */
export interface RetryOptions {
  /** Tries in all, the first included (1 = no retry). Default 5. */
  attempts: number;
  /** Wait before the first retry; each further wait doubles. Default 500. */
  backoff: number;
  /** Cap of one wait. Default 30000. */
  maxBackoff: number;
  /** Fraction of each wait that is random, 0–1. Default 0.5. */
  jitter: number;
  /** A `Retry-After` longer than this ends the retries. Default 60000. */
  maxRetryAfter: number;
  /** Statuses retried (network errors always are). Default 429, 500, 502, 503, 504. */
  statuses: readonly number[];
}

/** Options of `createClient`. Times in milliseconds. */
export interface ClientOptions {
  /** The server; default `$STRIPEMETER_API_URL`, else `http://localhost:3000`. */
  apiUrl?: string;
  /** A StripeMeter API key (`sm_…`), sent as `Authorization: Bearer`; default `$STRIPEMETER_API_KEY`. */
  apiKey?: string;
  /** Sent with each request; the server refuses it (403) unless it is the key's tenant. */
  tenantId?: string;
  /** The default `customerRef` of `track`, `getUsage` and `getProjection`. */
  customerId?: string;
  /** Per attempt of a request. Default 10000. */
  timeout?: number;
  /** Retry settings, or `false` for none. */
  retry?: Partial<RetryOptions> | false;
  /** Events per ingest request, 1–1000; a full batch is sent at once. Default 100. */
  batchSize?: number;
  /** Background flush every this many ms, or `false` for none. Default 2000. */
  flushInterval?: number | false;
  /** Events kept in memory at most; `track` then throws `QueueFullError`. Default 100000. */
  maxQueueSize?: number;
  /** Retry waits allowed when flushing at `close()` and at process exit. Default 5000. */
  closeTimeout?: number;
  /** Send queued events before `getUsage`/`getProjection`/`listEvents` so they count. Default true. */
  flushBeforeRead?: boolean;
  /** Failures of background flushes (default: `console.warn`). */
  onError?: (error: Error) => void;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /** A `fetch` implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Flush at process exit (`beforeExit`). Default true. */
  flushOnExit?: boolean;
}
