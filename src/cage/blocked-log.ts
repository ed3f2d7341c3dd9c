/**
 * Audit entries for refused requests, with a bound, so a flood cannot flood the audit log:
 * per fixed window (a minute by default) at most `perKeyMax` entries per key (rule and
 * client) and `totalMax` in all are written; the rest are counted, and one summary entry
 * per window (`request.suppressed`) records how many were left out and the busiest keys.
 * So the table grows by at most totalMax + 1 rows a window, whatever comes in.
 */
import type { AuditLog, AuditInput } from './audit.js'

export interface BlockedLogLimits {
  /** Length of a counting window, in ms. */
  windowMs: number
  /** Entries written per key and window. */
  perKeyMax: number
  /** Entries written per window in all. */
  totalMax: number
  /** Keys counted per window; past this, refusals are counted in one sum. */
  keysMax: number
  /** Busiest keys named in the summary entry. */
  topKeys: number
}

export const BLOCKED_LOG_LIMITS_DEFAULT: Readonly<BlockedLogLimits> = Object.freeze({
  windowMs: 60_000,
  perKeyMax: 5,
  totalMax: 100,
  keysMax: 10_000,
  topKeys: 10,
})

/** One refused request: the key it is counted under, and its audit entry. */
export interface BlockedRequest extends Omit<AuditInput, 'nowMs'> {
  /** Who is refused by what: rule id and client, say. */
  key: string
}

export interface BlockedLogOptions extends Partial<BlockedLogLimits> {
  audit: AuditLog
  /** Told when writing an entry fails; the request is refused all the same. */
  onError?: (err: unknown) => void
}

interface KeyCount {
  written: number
  suppressed: number
}

export class BlockedRequestLog {
  readonly limits: Readonly<BlockedLogLimits>
  readonly #audit: AuditLog
  readonly #onError: (err: unknown) => void
  readonly #keys = new Map<string, KeyCount>()
  #windowStartMs = 0
  #written = 0
  #suppressed = 0
  /** Refusals of keys that found the key table full. */
  #suppressedUncounted = 0
  #timer: NodeJS.Timeout | null
  #closed = false
  /** Appends under way, at most totalMax + 1 per window: close() waits for them. */
  readonly #writing = new Set<Promise<void>>()

  constructor (options: BlockedLogOptions) {
    const { audit, onError, ...limits } = options
    this.limits = Object.freeze({ ...BLOCKED_LOG_LIMITS_DEFAULT, ...stripUndefined(limits) })
    for (const [name, value] of Object.entries(this.limits)) {
      // 0 entries per key or in all is allowed: refusals are then only summarised.
      const min = name === 'windowMs' || name === 'keysMax' ? 1 : 0
      if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be an integer of at least ${min}, got ${String(value)}`)
    }
    this.#audit = audit
    this.#onError = onError ?? (() => {})
    // Writes the summary of a quiet window too, not only when the next refusal comes.
    this.#timer = setInterval(() => this.flush(Date.now()), this.limits.windowMs)
    this.#timer.unref()
  }

  /** Records a refused request: written, or counted for the window's summary. */
  record (request: BlockedRequest, nowMs = Date.now()): 'written' | 'suppressed' {
    if (this.#closed) return 'suppressed'
    this.flush(nowMs)
    const { key, ...entry } = request
    let count = this.#keys.get(key)
    if (count === undefined && this.#keys.size < this.limits.keysMax) {
      count = { written: 0, suppressed: 0 }
      this.#keys.set(key, count)
    }
    if (count !== undefined && count.written < this.limits.perKeyMax && this.#written < this.limits.totalMax) {
      count.written++
      this.#written++
      this.#append({ ...entry, nowMs })
      return 'written'
    }
    this.#suppressed++
    if (count === undefined) this.#suppressedUncounted++
    else count.suppressed++
    return 'suppressed'
  }

  /** Ends the window if it is over: writes its summary when something was left out. */
  flush (nowMs = Date.now()): void {
    const startMs = nowMs - (nowMs % this.limits.windowMs)
    if (startMs === this.#windowStartMs) return
    this.#writeSummary()
    this.#windowStartMs = startMs
  }

  /**
   * Writes the open window's summary, stops the timer and waits for the writes under way;
   * safe to call more than once.
   */
  async close (): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      if (this.#timer !== null) clearInterval(this.#timer)
      this.#timer = null
      this.#writeSummary()
    }
    await this.settled()
  }

  /** Resolves once the entries whose writes are under way are written (or reported). */
  async settled (): Promise<void> {
    await Promise.all(this.#writing)
  }

  #writeSummary (): void {
    if (this.#suppressed > 0) {
      const top = [...this.#keys].filter(([, count]) => count.suppressed > 0)
      top.sort((a, b) => b[1].suppressed - a[1].suppressed)
      this.#append({
        actor: 'hub',
        action: 'request.suppressed',
        detail: {
          windowStartMs: this.#windowStartMs,
          windowMs: this.limits.windowMs,
          written: this.#written,
          suppressed: this.#suppressed,
          keys: top.length,
          top: top.slice(0, this.limits.topKeys).map(([key, count]) => ({ key, suppressed: count.suppressed })),
          uncounted: this.#suppressedUncounted,
        },
      })
    }
    this.#keys.clear()
    this.#written = 0
    this.#suppressed = 0
    this.#suppressedUncounted = 0
  }

  /** Starts the write; the refused request is answered without waiting for it. */
  #append (entry: AuditInput): void {
    const writing = this.#audit.append(entry).then(() => {}, err => this.#onError(err))
    this.#writing.add(writing)
    void writing.finally(() => this.#writing.delete(writing))
  }
}

function stripUndefined<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
