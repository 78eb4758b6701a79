/**
 * The SDK's errors, one tree; catch the root, a branch or a leaf.
 *
 * ```
 * StripeMeterError
 * ├── ClientClosedError          the client was closed; it sends nothing more
 * ├── QueueFullError             maxQueueSize events are waiting; this one was not queued
 * ├── NetworkError               no answer: connection refused or reset, DNS, TLS…
 * │   └── NetworkTimeout         no answer in time (the request may or may not have been applied)
 * └── APIError                   the server answered with an error status
 *     ├── ValidationError        400/422: the request or its events are invalid (never retried)
 *     │   └── EventsRejectedError  some tracked events were answered "rejected"
 *     ├── AuthenticationError    401: missing, unknown, expired or revoked API key
 *     ├── PermissionDeniedError  403: the key lacks a scope, or the tenant does not match
 *     ├── NotFoundError          404
 *     ├── ConflictError          409: an idempotency key re-used with another request
 *     ├── RateLimitError         429, after the retries ran out
 *     └── ServerError            5xx, after the retries ran out
 * ```
 *
 * Network errors, 429 and 5xx are retried first; the error is thrown when the retries run out.
 * `instanceof` works within one module format; with both `import` and `require` of this package in
 * one process, compare `error.name` instead.
 */

import type { EventResult, IngestResult, TrackedEvent } from './types.js';

/** Any error thrown by the StripeMeter SDK. */
export class StripeMeterError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The client is closed; create a new one to send more. */
export class ClientClosedError extends StripeMeterError {}

/** The in-memory queue is full (the server has been unreachable for a while); the event was not queued. */
export class QueueFullError extends StripeMeterError {}

/** The server could not be reached or did not answer. */
export class NetworkError extends StripeMeterError {}

/** The server did not answer in time; the request may or may not have been applied. */
export class NetworkTimeout extends NetworkError {}

/** Fields of an error answer, read from the error envelope `{"error": {type, code, message, param, details}}`. */
export interface APIErrorFields {
  status: number;
  code?: string;
  type?: string;
  param?: string | null;
  details?: unknown;
  requestId?: string | null;
  /** The server's `Retry-After`, in milliseconds. */
  retryAfter?: number | null;
  /** The answer's body (parsed JSON, or text). */
  body?: unknown;
}

/** The server answered with an error status. */
export class APIError extends StripeMeterError {
  readonly status: number;
  readonly code: string;
  readonly type: string;
  readonly param: string | null;
  readonly details: unknown;
  readonly requestId: string | null;
  readonly retryAfter: number | null;
  readonly body: unknown;

  constructor(message: string, fields: APIErrorFields) {
    super(message);
    this.status = fields.status;
    this.code = fields.code ?? '';
    this.type = fields.type ?? '';
    this.param = fields.param ?? null;
    this.details = fields.details;
    this.requestId = fields.requestId ?? null;
    this.retryAfter = fields.retryAfter ?? null;
    this.body = fields.body;
  }
}

/** The request or its events are invalid; retrying the same request cannot help. */
export class ValidationError extends APIError {
  /** Per-event results of an ingest request, when the server sent them. */
  readonly results: EventResult[];

  constructor(message: string, fields: APIErrorFields & { results?: EventResult[] }) {
    super(message, fields);
    this.results = fields.results ?? [];
  }
}

/**
 * The server answered for every event sent, but refused some of them.
 *
 * Rejected events are dropped (never retried). `results` holds their results and `events` the
 * events themselves, in the same order; `result` is the whole flush (accepted ones included).
 */
export class EventsRejectedError extends ValidationError {
  readonly events: TrackedEvent[];
  readonly result: IngestResult | null;

  constructor(
    message: string,
    fields: { results: EventResult[]; events: TrackedEvent[]; result?: IngestResult; status?: number },
  ) {
    const first = fields.results[0]?.error;
    super(message, {
      status: fields.status ?? 400,
      code: first?.code ?? 'rejected',
      type: 'invalid_request_error',
      param: first ? first.field : null,
      results: fields.results,
    });
    this.events = fields.events;
    this.result = fields.result ?? null;
  }
}

/** The API key is missing, unknown, expired or revoked. */
export class AuthenticationError extends APIError {}

/** The API key is valid but may not do this (a scope, or another tenant). */
export class PermissionDeniedError extends APIError {}

/** No such resource (or route) for this tenant. */
export class NotFoundError extends APIError {}

/** The request conflicts with an earlier one (an idempotency key re-used). */
export class ConflictError extends APIError {}

/** Too many requests, still refused after the retries; `retryAfter` says when to come back. */
export class RateLimitError extends APIError {}

/** The server failed (5xx), still after the retries. */
export class ServerError extends APIError {}
