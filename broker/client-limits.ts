/**
 * Per-client limits: a publish-rate token bucket (excess publishes are delayed, which
 * stops Aedes reading the socket, so TCP flow control slows the sender and nothing is
 * lost) and a sliding count of bad packets that ends the connection past a threshold.
 */

export class TokenBucket {
  readonly #ratePerMs: number
  readonly #burst: number
  #tokens: number
  #updatedMs: number

  constructor (perSecond: number, burst: number, nowMs = Date.now()) {
    this.#ratePerMs = perSecond / 1000
    this.#burst = burst
    this.#tokens = burst
    this.#updatedMs = nowMs
  }

  /** Takes one token; returns 0 when one was there, else how long to wait for it, in ms. */
  take (nowMs = Date.now()): number {
    this.#tokens = Math.min(this.#burst, this.#tokens + (nowMs - this.#updatedMs) * this.#ratePerMs)
    this.#updatedMs = nowMs
    this.#tokens -= 1
    if (this.#tokens >= 0) return 0
    return Math.ceil(-this.#tokens / this.#ratePerMs)
  }
}

export class BadPacketCounter {
  readonly #max: number
  readonly #windowMs: number
  #windowStartMs = 0
  #count = 0

  constructor (max: number, windowMs: number) {
    this.#max = max
    this.#windowMs = windowMs
  }

  /** Counts one bad packet; true once the client has gone past the threshold. */
  add (nowMs = Date.now()): boolean {
    if (nowMs - this.#windowStartMs > this.#windowMs) {
      this.#windowStartMs = nowMs
      this.#count = 0
    }
    this.#count += 1
    return this.#count > this.#max
  }
}
