/**
 * The counters behind `rate_limit` rules: a sliding-window estimate per key, bounded in
 * size. Each key keeps the count of the current fixed window and of the one before; the
 * estimate weighs the previous count by how much of it still overlaps the sliding window
 * (the "sliding window counter" of Cloudflare's rate limiter). Unlike a plain fixed window
 * it does not let a client send twice the limit across a window boundary, and it costs two
 * numbers per key.
 */

interface Counter {
  /** Start of the current fixed window, ms since the epoch (a multiple of windowMs). */
  startMs: number
  current: number
  previous: number
}

export class RateCounters {
  readonly max: number
  readonly windowMs: number
  /**
   * Keys kept at most; past this, stale keys are swept, then the oldest are forgotten. The
   * owner may change it (the budget is shared between rules); a lower bound applies from the
   * next new key on.
   */
  keysMax: number
  readonly #counters = new Map<string, Counter>()
  #sweptMs = -Infinity

  constructor (max: number, windowMs: number, keysMax: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${String(max)}`)
    if (!Number.isSafeInteger(windowMs) || windowMs < 1) throw new RangeError(`windowMs must be a positive integer, got ${String(windowMs)}`)
    if (!Number.isSafeInteger(keysMax) || keysMax < 1) throw new RangeError(`keysMax must be a positive integer, got ${String(keysMax)}`)
    this.max = max
    this.windowMs = windowMs
    this.keysMax = keysMax
  }

  get size (): number {
    return this.#counters.size
  }

  /**
   * Counts one request of `key` at `nowMs` if it is within the limit and returns 0;
   * otherwise counts nothing and returns the whole seconds after which a request would be
   * admitted again (at least 1), for Retry-After. Refused requests are not counted, so that
   * Retry-After holds for a client that keeps trying.
   */
  hit (key: string, nowMs: number): number {
    const { windowMs, max } = this
    const startMs = nowMs - (nowMs % windowMs)
    let counter = this.#counters.get(key)
    if (counter === undefined) {
      this.#makeRoom(nowMs)
      counter = { startMs, current: 0, previous: 0 }
      this.#counters.set(key, counter)
    } else if (counter.startMs !== startMs) {
      counter.previous = startMs - counter.startMs === windowMs ? counter.current : 0
      counter.current = 0
      counter.startMs = startMs
    }
    const elapsedMs = nowMs - startMs
    const estimate = counter.previous * (windowMs - elapsedMs) / windowMs + counter.current
    if (estimate < max) {
      counter.current++
      return 0
    }
    return Math.max(1, Math.ceil((this.#waitMs(counter, elapsedMs) + 1) / 1000))
  }

  /** How long until the estimate drops below max with no further requests counted. */
  #waitMs (counter: Counter, elapsedMs: number): number {
    const { windowMs, max } = this
    if (counter.current < max) {
      // Within this window, as the previous window's share fades:
      // previous × (windowMs − elapsed − wait) / windowMs + current < max.
      return windowMs - elapsedMs - (max - counter.current) * windowMs / counter.previous
    }
    // In the next window, this window's count becomes the previous one and must fade:
    // current × (windowMs − x) / windowMs < max.
    return windowMs - elapsedMs + windowMs * (1 - max / counter.current)
  }

  #makeRoom (nowMs: number): void {
    if (this.#counters.size < this.keysMax) return
    // A key whose windows both ended counts nothing any more. Sweeping is O(keys), so it
    // runs at most once per window; in between, the oldest keys make room.
    if (nowMs - this.#sweptMs >= this.windowMs) {
      this.#sweptMs = nowMs
      const staleBeforeMs = nowMs - (nowMs % this.windowMs) - this.windowMs
      for (const [key, counter] of this.#counters) {
        if (counter.startMs < staleBeforeMs) this.#counters.delete(key)
      }
    }
    // Forgetting the oldest key lets it start afresh, which is the price of a bound: a client
    // spread over more than keysMax keys can get some requests past its limit.
    while (this.#counters.size >= this.keysMax) {
      const oldest = this.#counters.keys().next().value as string
      this.#counters.delete(oldest)
    }
  }
}
