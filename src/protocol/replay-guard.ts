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
 * Layout, chosen so that a remembered pair costs about a hundred bytes and one small
 * string, not a graph of objects (the hub remembers up to a million pairs, and every
 * object is work for the garbage collector):
 * - each key gets a small number while it has pairs (keyNumbers), and a pair is one
 *   compact one-byte string: 4 characters of key number, a marker, and the id's bytes (an
 *   id given as lowercase hex is stored as the bytes it spells, so bytes and their hex are
 *   the same id, as before; any other id string is stored as it is, after another marker);
 * - slotOf maps that string to its slot in a ring of slots in time order (times are
 *   clamped never to go backwards): the pair's string, time, key number and the next slot
 *   of the same key, in one array and three typed arrays;
 * - per key: how many live pairs it has, and its first and last slot, so that a key's
 *   oldest pair is found by following its chain.
 * A forgotten pair's slot is only marked dead; the ring's front passes dead slots as it
 * expires pairs, and when the ring is full it is rebuilt from its live slots at twice their
 * number (and again, smaller, once it is mostly empty), so it holds at most about twice
 * the live pairs. Every operation is O(1) amortised.
 */

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
/** Characters before the id in a pair string: the key number in 4 bytes, then a marker. */
const PREFIX_CHARS = 5
const MARKER_BYTES = 0
const MARKER_TEXT = 1
/** The ring never shrinks below this many slots. */
const RING_SLOTS_MIN = 1024
const KEYS_MIN = 64

export class ReplayGuard {
  readonly windowMs: number
  readonly perKeyMax: number
  readonly totalMax: number
  /** Pair string → its slot in the ring. */
  private readonly slotOf = new Map<string, number>()
  // The ring: slots head, head + 1, ... (modulo capacity), count of them in use.
  private capacity = 0
  private head = 0
  private count = 0
  /** The slot's pair string; undefined once the pair is forgotten (a dead slot). */
  private pairs: Array<string | undefined> = []
  private times = new Float64Array(0)
  private owners = new Int32Array(0)
  /** The next slot of the same key, or -1. */
  private nextOfKey = new Int32Array(0)
  // Keys: number ↔ key, and per number its live pair count and first and last slot.
  private readonly keyNumbers = new Map<string, number>()
  private keyNames: Array<string | undefined> = []
  private keyLive = new Int32Array(0)
  private keyFirst = new Int32Array(0)
  private keyLast = new Int32Array(0)
  private freeKeys: number[] = []
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
    this.reset()
  }

  /** Pairs remembered now. */
  get size (): number {
    return this.slotOf.size
  }

  /**
   * Whether (key, id) is remembered. With nowMs, a pair older than windowMs counts as
   * forgotten even if it has not been swept yet; without it, unswept pairs still count
   * (remembering a little longer than the window is always safe).
   */
  has (key: string, id: string | Uint8Array, nowMs?: number): boolean {
    checkPart('key', key)
    checkId(id)
    const keyNumber = this.keyNumbers.get(key)
    if (keyNumber === undefined) return false
    const slot = this.slotOf.get(pairString(keyNumber, id))
    if (slot === undefined) return false
    if (nowMs === undefined) return true
    checkNow(nowMs)
    return nowMs - this.times[slot] <= this.windowMs
  }

  /** Remembers (key, id) as seen at nowMs, sweeping expired pairs and enforcing the bounds. */
  add (key: string, id: string | Uint8Array, nowMs: number): void {
    checkPart('key', key)
    checkId(id)
    checkNow(nowMs)
    const atMs = Math.max(nowMs, this.lastMs)
    this.lastMs = atMs
    // Expire from the front (passing dead slots on the way).
    while (this.count > 0) {
      const oldest = this.head
      if (this.pairs[oldest] !== undefined && !(atMs - this.times[oldest] > this.windowMs)) break
      this.popFront()
    }
    // Give memory back once traffic has fallen far below what the ring was sized for.
    if (this.capacity > RING_SLOTS_MIN && this.count * 8 < this.capacity) this.rebuild()
    const keyNumber = this.keyNumbers.get(key) ?? this.newKey(key)
    const pair = pairString(keyNumber, id)
    const existing = this.slotOf.get(pair)
    // Adding a pair again refreshes it; the key keeps its number meanwhile.
    if (existing !== undefined) this.kill(existing, false)
    if (this.count === this.capacity) this.rebuild()
    let slot = this.head + this.count
    if (slot >= this.capacity) slot -= this.capacity
    this.count++
    this.pairs[slot] = pair
    this.times[slot] = atMs
    this.owners[slot] = keyNumber
    this.nextOfKey[slot] = -1
    if (this.keyLast[keyNumber] === -1) this.keyFirst[keyNumber] = slot
    else this.nextOfKey[this.keyLast[keyNumber]] = slot
    this.keyLast[keyNumber] = slot
    this.keyLive[keyNumber]++
    this.slotOf.set(pair, slot)
    while (this.keyLive[keyNumber] > this.perKeyMax) this.forgetOldestOfKey(keyNumber)
    while (this.slotOf.size > this.totalMax) {
      while (this.pairs[this.head] === undefined) this.popFront()
      this.popFront()
    }
  }

  /** Forgets everything. */
  clear (): void {
    this.slotOf.clear()
    this.keyNumbers.clear()
    this.reset()
  }

  private reset (): void {
    this.capacity = 0
    this.head = 0
    this.count = 0
    this.pairs = []
    this.times = new Float64Array(0)
    this.owners = new Int32Array(0)
    this.nextOfKey = new Int32Array(0)
    this.keyNames = []
    this.keyLive = new Int32Array(KEYS_MIN)
    this.keyFirst = new Int32Array(KEYS_MIN).fill(-1)
    this.keyLast = new Int32Array(KEYS_MIN).fill(-1)
    this.freeKeys = []
  }

  private newKey (key: string): number {
    let keyNumber = this.freeKeys.pop()
    if (keyNumber === undefined) {
      keyNumber = this.keyNames.length
      this.keyNames.push(undefined)
      if (keyNumber >= this.keyLive.length) {
        const size = this.keyLive.length * 2
        this.keyLive = grown(this.keyLive, size, 0)
        this.keyFirst = grown(this.keyFirst, size, -1)
        this.keyLast = grown(this.keyLast, size, -1)
      }
    }
    this.keyNames[keyNumber] = key
    this.keyNumbers.set(key, keyNumber)
    return keyNumber
  }

  /** Marks a live slot dead; a key left with no live pair gives its number back (unless freeKey is false). */
  private kill (slot: number, freeKey = true): void {
    const pair = this.pairs[slot] as string
    this.pairs[slot] = undefined
    this.slotOf.delete(pair)
    const keyNumber = this.owners[slot]
    if (--this.keyLive[keyNumber] === 0 && freeKey) {
      // Its dead slots still in the ring keep the number as owner: they are never in the
      // chain of the key that gets the number next, whose slots are all newer.
      this.keyNumbers.delete(this.keyNames[keyNumber] as string)
      this.keyNames[keyNumber] = undefined
      this.keyFirst[keyNumber] = -1
      this.keyLast[keyNumber] = -1
      this.freeKeys.push(keyNumber)
    }
  }

  /** Takes the oldest slot off the ring (forgetting its pair if it is live). */
  private popFront (): void {
    const slot = this.head
    if (this.pairs[slot] !== undefined) this.kill(slot)
    // The oldest slot is first in its key's chain, unless it was unlinked already.
    const keyNumber = this.owners[slot]
    if (this.keyFirst[keyNumber] === slot) this.unlinkFirst(keyNumber, slot)
    this.head = slot + 1 === this.capacity ? 0 : slot + 1
    this.count--
  }

  private unlinkFirst (keyNumber: number, slot: number): void {
    if (this.keyLast[keyNumber] === slot) {
      this.keyFirst[keyNumber] = -1
      this.keyLast[keyNumber] = -1
    } else {
      this.keyFirst[keyNumber] = this.nextOfKey[slot]
    }
  }

  /** Forgets a key's oldest live pair; dead slots passed on the way leave the key's chain. */
  private forgetOldestOfKey (keyNumber: number): void {
    for (;;) {
      const slot = this.keyFirst[keyNumber]
      const live = this.pairs[slot] !== undefined
      this.unlinkFirst(keyNumber, slot)
      if (live) {
        this.kill(slot)
        return
      }
    }
  }

  /** Copies the live slots, in order, into a ring of twice their number, and rebuilds the chains. */
  private rebuild (): void {
    const live = this.slotOf.size
    const capacity = Math.max(RING_SLOTS_MIN, 2 * live)
    const pairs: Array<string | undefined> = []
    for (let i = 0; i < capacity; i++) pairs.push(undefined)
    const times = new Float64Array(capacity)
    const owners = new Int32Array(capacity)
    const nextOfKey = new Int32Array(capacity).fill(-1)
    // Every key with a chain owns a slot in the ring (a key re-adding its only pair may
    // have none live just now): start all their chains afresh.
    for (let i = 0, slot = this.head; i < this.count; i++, slot = slot + 1 === this.capacity ? 0 : slot + 1) {
      this.keyFirst[this.owners[slot]] = -1
      this.keyLast[this.owners[slot]] = -1
    }
    let to = 0
    for (let i = 0, slot = this.head; i < this.count; i++, slot = slot + 1 === this.capacity ? 0 : slot + 1) {
      const pair = this.pairs[slot]
      if (pair === undefined) continue
      const keyNumber = this.owners[slot]
      pairs[to] = pair
      times[to] = this.times[slot]
      owners[to] = keyNumber
      if (this.keyLast[keyNumber] === -1) this.keyFirst[keyNumber] = to
      else nextOfKey[this.keyLast[keyNumber]] = to
      this.keyLast[keyNumber] = to
      this.slotOf.set(pair, to)
      to++
    }
    this.pairs = pairs
    this.times = times
    this.owners = owners
    this.nextOfKey = nextOfKey
    this.capacity = capacity
    this.head = 0
    this.count = to
  }
}

function grown (array: Int32Array, size: number, fill: number): Int32Array<ArrayBuffer> {
  const out = new Int32Array(size)
  if (fill !== 0) out.fill(fill)
  out.set(array)
  return out
}

// Pair strings are built from char codes in one call (no intermediate strings): one array
// per length, reused.
const codeArrays: number[][] = []

/** The one-byte string for (key number, id); ids were checked already. */
function pairString (keyNumber: number, id: string | Uint8Array): string {
  let codes: number[]
  if (typeof id !== 'string') {
    codes = codeArrays[PREFIX_CHARS + id.length] ??= new Array<number>(PREFIX_CHARS + id.length).fill(0)
    codes[4] = MARKER_BYTES
    for (let i = 0; i < id.length; i++) codes[PREFIX_CHARS + i] = id[i]
  } else if (isLowerHex(id)) {
    const length = id.length >> 1
    codes = codeArrays[PREFIX_CHARS + length] ??= new Array<number>(PREFIX_CHARS + length).fill(0)
    codes[4] = MARKER_BYTES
    for (let i = 0; i < length; i++) codes[PREFIX_CHARS + i] = hexValue(id.charCodeAt(2 * i)) * 16 + hexValue(id.charCodeAt(2 * i + 1))
  } else {
    codes = codeArrays[PREFIX_CHARS + id.length] ??= new Array<number>(PREFIX_CHARS + id.length).fill(0)
    codes[4] = MARKER_TEXT
    for (let i = 0; i < id.length; i++) codes[PREFIX_CHARS + i] = id.charCodeAt(i)
  }
  codes[0] = keyNumber >>> 24
  codes[1] = (keyNumber >>> 16) & 0xff
  codes[2] = (keyNumber >>> 8) & 0xff
  codes[3] = keyNumber & 0xff
  return String.fromCharCode.apply(null, codes)
}

/** An even number of lowercase hex digits: the hex of some bytes, which stand for it. */
function isLowerHex (text: string): boolean {
  if ((text.length & 1) !== 0) return false
  for (let i = 0; i < text.length; i++) if (hexValue(text.charCodeAt(i)) < 0) return false
  return true
}

function hexValue (code: number): number {
  if (code >= 48 && code <= 57) return code - 48
  if (code >= 97 && code <= 102) return code - 87
  return -1
}

/** Ids may be given as bytes (an envelope id, a nonce): the same id as their hex. */
function checkId (id: unknown): void {
  if (id instanceof Uint8Array) {
    if (id.length === 0 || id.length > PART_CHARS_MAX / 2) throw new TypeError(`id expected 1 to ${PART_CHARS_MAX / 2} bytes, got length=${id.length}`)
    return
  }
  checkPart('id', id)
}

function checkPart (name: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > PART_CHARS_MAX) {
    throw new TypeError(`${name} expected a string of 1 to ${PART_CHARS_MAX} characters, got ${typeof value === 'string' ? `length=${value.length}` : typeof value}`)
  }
}

function checkNow (nowMs: unknown): void {
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new TypeError(`nowMs expected a finite number, got ${String(nowMs)}`)
}
