/**
 * Remembers (key, id) pairs for a window so that a repeat can be refused: envelope ids per
 * sender (§4: key = principal id, id = the 16-byte id, as bytes or hex; window at least
 * twice the skew) and CONNECT nonces per principal (§2).
 *
 * Memory is bounded whatever senders do: past perKeyMax a key's oldest pair goes, past
 * totalMax the oldest pair of all goes. Forgetting early only weakens the guard for the
 * pairs forgotten, and only for a sender that floods it; the bounds are the price of not
 * letting anyone grow the hub without limit.
 *
 * Every operation is O(1) amortised. Pairs are looked up in a Map and queued in time order
 * (times are clamped never to go backwards), once globally and once per key; a forgotten
 * pair is only marked dead in the queues, and dead pairs are skipped when they reach the
 * front or compacted away once they make up half a queue. (Popping the front of a Map
 * through its iterator is not O(1) in V8: deleted slots stay until the table is rebuilt
 * and every new iterator walks over them.)
 */

import { toHex } from './bytes.js'

export interface ReplayGuardOptions {
  /** How long a pair is remembered, in ms. */
  windowMs: number
  /** Pairs remembered per key before that key's oldest is forgotten. */
  perKeyMax: number
  /** Pairs remembered in total before the oldest is forgotten. */
  totalMax: number
}

/** Keys and ids are short (a principal id, the hex of 16 bytes): longer ones are caller bugs. */
const PART_CHARS_MAX = 128

interface Entry {
  key: string
  pair: string
  atMs: number
  live: boolean
}

/** The pairs of one key, oldest first, and how many of them are live. */
interface KeyState {
  queue: Fifo
  live: number
}

export class ReplayGuard {
  readonly windowMs: number
  readonly perKeyMax: number
  readonly totalMax: number
  private readonly entries = new Map<string, Entry>()
  private readonly queue = new Fifo()
  private readonly byKey = new Map<string, KeyState>()
  private lastMs = -Infinity

  constructor (options: ReplayGuardOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options expected { windowMs, perKeyMax, totalMax }')
    for (const name of ['windowMs', 'perKeyMax', 'totalMax'] as const) {
      const value = options[name]
      if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} expected a positive integer, got ${String(value)}`)
    }
    this.windowMs = options.windowMs
    this.perKeyMax = options.perKeyMax
    this.totalMax = options.totalMax
  }

  /** Pairs remembered now. */
  get size (): number {
    return this.entries.size
  }

  /**
   * Whether (key, id) is remembered. With nowMs, a pair older than windowMs counts as
   * forgotten even if it has not been swept yet; without it, unswept pairs still count
   * (remembering a little longer than the window is always safe).
   */
  has (key: string, id: string | Uint8Array, nowMs?: number): boolean {
    checkPart('key', key)
    const entry = this.entries.get(pairOf(key, idText(id)))
    if (entry === undefined) return false
    if (nowMs === undefined) return true
    checkNow(nowMs)
    return nowMs - entry.atMs <= this.windowMs
  }

  /** Remembers (key, id) as seen at nowMs, sweeping expired pairs and enforcing the bounds. */
  add (key: string, id: string | Uint8Array, nowMs: number): void {
    checkPart('key', key)
    const idString = idText(id)
    checkNow(nowMs)
    const atMs = Math.max(nowMs, this.lastMs)
    this.lastMs = atMs
    for (let oldest = this.queue.peek(); oldest !== undefined && atMs - oldest.atMs > this.windowMs; oldest = this.queue.peek()) {
      this.forget(oldest)
    }
    const pair = pairOf(key, idString)
    const existing = this.entries.get(pair)
    if (existing !== undefined) this.forget(existing)
    const entry: Entry = { key, pair, atMs, live: true }
    this.entries.set(pair, entry)
    this.queue.push(entry)
    let state = this.byKey.get(key)
    if (state === undefined) {
      state = { queue: new Fifo(), live: 0 }
      this.byKey.set(key, state)
    }
    state.queue.push(entry)
    state.live++
    while (state.live > this.perKeyMax) this.forget(state.queue.peek() as Entry)
    while (this.entries.size > this.totalMax) this.forget(this.queue.peek() as Entry)
    this.queue.compactIfSparse(this.entries.size)
    if (state.live > 0) state.queue.compactIfSparse(state.live)
  }

  /** Forgets everything. */
  clear (): void {
    this.entries.clear()
    this.byKey.clear()
    this.queue.clear()
  }

  private forget (entry: Entry): void {
    if (!entry.live) return
    entry.live = false
    this.entries.delete(entry.pair)
    const state = this.byKey.get(entry.key)
    if (state === undefined) return
    state.live--
    if (state.live === 0) this.byKey.delete(entry.key)
  }
}

/** A queue of entries, oldest first, that skips dead ones and reclaims their room. */
class Fifo {
  private items: Entry[] = []
  private head = 0

  push (entry: Entry): void {
    this.items.push(entry)
  }

  /** The oldest live entry, or undefined. */
  peek (): Entry | undefined {
    while (this.head < this.items.length && !this.items[this.head].live) this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return this.items[this.head]
  }

  /** Drops dead entries once they outnumber the live ones (plus some slack). */
  compactIfSparse (live: number): void {
    if (this.items.length - this.head > 2 * live + 64) {
      this.items = this.items.slice(this.head).filter((entry) => entry.live)
      this.head = 0
    }
  }

  clear (): void {
    this.items = []
    this.head = 0
  }
}

/** One string per pair; the length prefix keeps ("ab", "c") and ("a", "bc") apart. */
function pairOf (key: string, id: string): string {
  return `${key.length}:${key}${id}`
}

/** Ids may be given as bytes (an envelope id, a nonce): they are remembered as hex. */
function idText (id: unknown): string {
  if (id instanceof Uint8Array) {
    if (id.length === 0 || id.length > PART_CHARS_MAX / 2) throw new TypeError(`id expected 1 to ${PART_CHARS_MAX / 2} bytes, got length=${id.length}`)
    return toHex(id)
  }
  checkPart('id', id)
  return id as string
}

function checkPart (name: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > PART_CHARS_MAX) {
    throw new TypeError(`${name} expected a string of 1 to ${PART_CHARS_MAX} characters, got ${typeof value === 'string' ? `length=${value.length}` : typeof value}`)
  }
}

function checkNow (nowMs: unknown): void {
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new TypeError(`nowMs expected a finite number, got ${String(nowMs)}`)
}
