/**
 * Counts every rejection by reason and logs them at most once per interval (§7): the
 * first rejection of an interval is logged at once with its client, the rest are summed
 * into the next summary line, so a flood cannot flood the log.
 */
import type { Logger } from 'pino'
import type { BrokerMetrics } from './metrics.js'

export class RejectionLog {
  readonly #log: Logger
  readonly #metrics: BrokerMetrics
  readonly #intervalMs: number
  #lastLoggedMs = 0
  #suppressed = new Map<string, number>()

  constructor (log: Logger, metrics: BrokerMetrics, intervalMs: number) {
    this.#log = log
    this.#metrics = metrics
    this.#intervalMs = intervalMs
  }

  record (reason: string, clientId: string | null, nowMs = Date.now()): void {
    this.#metrics.rejections.inc({ reason })
    if (nowMs - this.#lastLoggedMs < this.#intervalMs) {
      this.#suppressed.set(reason, (this.#suppressed.get(reason) ?? 0) + 1)
      return
    }
    const suppressed = Object.fromEntries(this.#suppressed)
    this.#suppressed.clear()
    this.#lastLoggedMs = nowMs
    this.#log.warn({ reason, clientId, suppressedSinceLast: suppressed }, 'message rejected')
  }
}
