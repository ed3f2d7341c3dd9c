/**
 * Latency samples and percentiles. Samples go into a preallocated Float64Array so that
 * recording one costs no allocation on the hot path (the generator shares the cores with
 * the broker, so its own cost shows up in the figures).
 */

export class LatencyRecorder {
  #samples: Float64Array
  #count = 0
  #dropped = 0

  constructor (capacity = 2_000_000) {
    this.#samples = new Float64Array(capacity)
  }

  /** Records one latency in ms; past the capacity samples are counted but not kept. */
  record (ms: number): void {
    if (this.#count < this.#samples.length) this.#samples[this.#count++] = ms
    else this.#dropped += 1
  }

  get count (): number {
    return this.#count + this.#dropped
  }

  /** Percentiles (0–100) by nearest rank over the kept samples; NaN when there are none. */
  percentiles (ps: number[]): number[] {
    if (this.#count === 0) return ps.map(() => NaN)
    const sorted = this.#samples.slice(0, this.#count).sort()
    return ps.map(p => percentileOfSorted(sorted, p))
  }
}

export function percentileOfSorted (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

export function median (values: number[]): number {
  return percentileOfSorted([...values].sort((a, b) => a - b), 50)
}
