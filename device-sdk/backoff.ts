/**
 * Reconnect delays: exponential backoff with jitter, so that a fleet that lost its hub at
 * the same moment does not come back in one synchronised wave ("full jitter", AWS
 * Architecture Blog, 2015).
 */
import { ArgumentError } from './errors.js'
import { stripUndefined } from './validate.js'

export interface ReconnectOptions {
  /** Ceiling of the first retry's delay, in ms; each further attempt doubles it. */
  initialDelayMs: number
  /** Largest delay between two attempts, in ms. */
  maxDelayMs: number
  /**
   * Share of the delay that is random, 0 to 1. 1 (the default) is full jitter: a delay
   * anywhere from 0 to the ceiling; 0 is plain exponential backoff.
   */
  jitter: number
}

export const DEFAULT_RECONNECT: Readonly<ReconnectOptions> = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  jitter: 1,
})

// 2 ** 40 ms is decades: any larger exponent only risks Infinity arithmetic.
const EXPONENT_MAX = 40

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry after a drop), in ms:
 * uniformly in [ceiling × (1 − jitter), ceiling] where ceiling = min(maxDelayMs,
 * initialDelayMs × 2^attempt). `random` returns [0, 1), like Math.random.
 */
export function backoffDelayMs (attempt: number, options: ReconnectOptions, random: () => number = Math.random): number {
  const ceilingMs = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(Math.max(attempt, 0), EXPONENT_MAX))
  return Math.floor(ceilingMs * (1 - options.jitter * random()))
}

export function resolveReconnectOptions (input: Partial<ReconnectOptions> = {}): ReconnectOptions {
  const options = { ...DEFAULT_RECONNECT, ...stripUndefined(input) }
  if (!Number.isFinite(options.initialDelayMs) || options.initialDelayMs < 0) {
    throw new ArgumentError(`reconnect.initialDelayMs must be a number ≥ 0, got ${String(options.initialDelayMs)}`)
  }
  if (!Number.isFinite(options.maxDelayMs) || options.maxDelayMs < options.initialDelayMs) {
    throw new ArgumentError(`reconnect.maxDelayMs must be a number ≥ initialDelayMs, got ${String(options.maxDelayMs)}`)
  }
  if (!(options.jitter >= 0 && options.jitter <= 1)) {
    throw new ArgumentError(`reconnect.jitter must be from 0 to 1, got ${String(options.jitter)}`)
  }
  return options
}
