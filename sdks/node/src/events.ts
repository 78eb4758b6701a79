/** Building events at `track` time: checked, timestamped and given their idempotency key. */

import { randomUUID } from 'node:crypto';

import type { Quantity, TimeInput, TrackInput, TrackedEvent } from './types.js';

/** Prefix of the keys the SDK makes. */
export const KEY_PREFIX = 'sdk_';

/** A fresh idempotency key: `sdk_` and a random UUID v4 in hex, 32 characters (122 random bits). */
export function newIdempotencyKey(): string {
  return KEY_PREFIX + randomUUID().replaceAll('-', '');
}

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** The wire form of a quantity: numbers stay numbers, decimal strings and bigints are sent as text. */
export function wireQuantity(value: Quantity): number | string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('quantity must be a finite number');
    return value;
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') {
    const text = value.trim();
    if (!DECIMAL.test(text)) throw new TypeError(`quantity must be a decimal number, got ${JSON.stringify(value)}`);
    return text;
  }
  throw new TypeError(`quantity must be a number, a decimal string or a bigint, got ${typeof value}`);
}

/** RFC 3339 in UTC for a Date or epoch ms; a string is checked and kept as written. */
export function wireTime(value: TimeInput): string {
  if (typeof value === 'string') {
    if (!RFC3339.test(value.trim()) || Number.isNaN(Date.parse(value))) {
      throw new TypeError(`ts must be an RFC 3339 time with an offset, got ${JSON.stringify(value)}`);
    }
    return value.trim();
  }
  const date = typeof value === 'number' ? new Date(value) : value;
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new TypeError('ts must be a valid Date');
  return date.toISOString();
}

/** A period bound: a Date as RFC 3339 in UTC, a string (a day or an RFC 3339 time) as written. */
export function wirePeriodBound(value: string | Date): string {
  return typeof value === 'string' ? value : wireTime(value);
}

function nonEmpty(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

/**
 * Check one event and build its wire form; `ts` defaults to now, the key to a fresh random one.
 *
 * Throws `TypeError` for input that can never be valid (so it never reaches the queue).
 */
export function buildEvent(input: TrackInput, defaultCustomer: string | undefined): TrackedEvent {
  if (input == null || typeof input !== 'object') throw new TypeError('track() takes an event object');
  const metric = nonEmpty('metric', input.metric);
  const customerRef = nonEmpty(
    'customerRef (or the client option customerId)',
    input.customerRef ?? defaultCustomer,
  );
  const quantity = wireQuantity(input.quantity);
  const ts = wireTime(input.ts ?? new Date());
  const idempotencyKey = input.idempotencyKey ?? newIdempotencyKey();
  if (typeof idempotencyKey !== 'string' || idempotencyKey.trim() === '' || idempotencyKey.length > 255) {
    throw new TypeError('idempotencyKey must be a non-empty string of at most 255 characters');
  }
  const event: {
    metric: string;
    customerRef: string;
    quantity: number | string;
    ts: string;
    idempotencyKey: string;
    source: 'sdk';
    resourceId?: string;
    meta?: Record<string, unknown>;
  } = { metric, customerRef, quantity, ts, idempotencyKey, source: 'sdk' };
  if (input.resourceId != null) event.resourceId = nonEmpty('resourceId', input.resourceId);
  if (input.meta != null) {
    if (typeof input.meta !== 'object' || Array.isArray(input.meta)) throw new TypeError('meta must be an object');
    let text: string;
    try {
      text = JSON.stringify(input.meta);
    } catch (error) {
      throw new TypeError(`meta must be JSON-serialisable: ${(error as Error).message}`);
    }
    // A copy, so later changes to the caller's object do not change the queued event.
    event.meta = JSON.parse(text) as Record<string, unknown>;
  }
  return deepFreeze(event);
}
