/**
 * StripeMeter for Node.js.
 *
 * ```ts
 * import { createClient } from '@stripemeter/sdk-node';
 * const client = createClient({ apiUrl: 'http://localhost:3000', apiKey: process.env.STRIPEMETER_API_KEY });
 * await client.track({ metric: 'api_calls', customerRef: 'cus_ABC123', quantity: 1 });
 * ```
 */

export {
  createClient,
  StripeMeterClient,
  DEFAULT_API_URL,
  DEFAULT_BATCH_SIZE,
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_FLUSH_INTERVAL,
  DEFAULT_MAX_QUEUE_SIZE,
  DEFAULT_TIMEOUT,
  MAX_BATCH_SIZE,
} from './client.js';
export {
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
export type { APIErrorFields } from './errors.js';
export { newIdempotencyKey, KEY_PREFIX } from './events.js';
export { DEFAULT_RETRY, backoffDelay, parseRetryAfter } from './retry.js';
export { VERSION } from './version.js';
export type * from './types.js';
