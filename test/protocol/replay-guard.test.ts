import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ReplayGuard, toHex } from '../../src/protocol/index.js'
import { DEVICE_ID, HUB_ID, seq16 } from './helpers.js'

const WINDOW = 240_000

test('remembers a pair for the window and forgets it after', () => {
  const guard = new ReplayGuard({ windowMs: WINDOW, perKeyMax: 10, totalMax: 100 })
  assert.equal(guard.has(DEVICE_ID, 'aa'), false)
  guard.add(DEVICE_ID, 'aa', 1000)
  assert.equal(guard.has(DEVICE_ID, 'aa'), true)
  assert.equal(guard.has(HUB_ID, 'aa'), false) // keyed by sender
  assert.equal(guard.has(DEVICE_ID, 'aa', 1000 + WINDOW), true)
  assert.equal(guard.has(DEVICE_ID, 'aa', 1000 + WINDOW + 1), false)
  guard.add(HUB_ID, 'bb', 1000 + WINDOW + 1) // adding sweeps what expired
  assert.equal(guard.has(DEVICE_ID, 'aa'), false)
  assert.equal(guard.size, 1)
})

test('ids may be bytes, remembered as their hex', () => {
  const guard = new ReplayGuard({ windowMs: WINDOW, perKeyMax: 10, totalMax: 100 })
  guard.add(DEVICE_ID, seq16(0xa0), 0)
  assert.equal(guard.has(DEVICE_ID, toHex(seq16(0xa0))), true)
  assert.equal(guard.has(DEVICE_ID, seq16(0xa0)), true)
  assert.equal(guard.has(DEVICE_ID, seq16(0xa1)), false)
})

test('past perKeyMax a key loses its oldest, and only that key', () => {
  const guard = new ReplayGuard({ windowMs: WINDOW, perKeyMax: 3, totalMax: 100 })
  guard.add(HUB_ID, 'other', 0)
  for (let i = 0; i < 5; i++) guard.add(DEVICE_ID, `id${i}`, i)
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => guard.has(DEVICE_ID, `id${i}`)), [false, false, true, true, true])
  assert.equal(guard.has(HUB_ID, 'other'), true)
  assert.equal(guard.size, 4)
})

test('past totalMax the oldest of all goes', () => {
  const guard = new ReplayGuard({ windowMs: WINDOW, perKeyMax: 100, totalMax: 3 })
  guard.add('a', '1', 0)
  guard.add('b', '1', 1)
  guard.add('a', '2', 2)
  guard.add('c', '1', 3)
  assert.equal(guard.has('a', '1'), false)
  assert.equal(guard.has('b', '1'), true)
  assert.equal(guard.size, 3)
})

test('adding a pair again refreshes it', () => {
  const guard = new ReplayGuard({ windowMs: 100, perKeyMax: 2, totalMax: 100 })
  guard.add('a', '1', 0)
  guard.add('a', '2', 10)
  guard.add('a', '1', 20)
  guard.add('a', '3', 30) // evicts the oldest of "a": now "2"
  assert.equal(guard.has('a', '1'), true)
  assert.equal(guard.has('a', '2'), false)
  assert.equal(guard.has('a', '1', 120), true)
  assert.equal(guard.has('a', '1', 121), false)
})

test('a clock that steps back never shortens what is remembered', () => {
  const guard = new ReplayGuard({ windowMs: 100, perKeyMax: 10, totalMax: 100 })
  guard.add('a', '1', 1000)
  guard.add('a', '2', 500) // remembered as of 1000
  guard.add('a', '3', 1099)
  assert.equal(guard.has('a', '1'), true)
  assert.equal(guard.has('a', '2'), true)
  guard.add('a', '4', 1101)
  assert.equal(guard.has('a', '1'), false)
  assert.equal(guard.has('a', '2'), false)
  assert.equal(guard.has('a', '3'), true)
})

test('memory stays bounded and operations stay fast under a flood', () => {
  const guard = new ReplayGuard({ windowMs: 10_000_000, perKeyMax: 1000, totalMax: 50_000 })
  const started = performance.now()
  for (let i = 0; i < 300_000; i++) {
    const key = i % 7 === 0 ? 'flooder' : `k${i % 5000}`
    guard.add(key, `id${i}`, i)
    guard.has(key, `id${i - 1}`)
  }
  const elapsed = performance.now() - started
  assert.equal(guard.size, 50_000)
  // The ring of slots (live and forgotten pairs) holds at most about twice the live pairs.
  const internals = guard as unknown as { capacity: number, count: number }
  assert.ok(internals.capacity <= 2 * 50_000 + 1024, `ring of ${internals.capacity} slots`)
  assert.ok(internals.count <= internals.capacity)
  assert.ok(elapsed < 3000, `600k operations took ${elapsed} ms`)
})

test('caller bugs are TypeErrors', () => {
  assert.throws(() => new ReplayGuard({ windowMs: 0, perKeyMax: 1, totalMax: 1 }), /windowMs expected a positive integer/)
  assert.throws(() => new ReplayGuard({ windowMs: 1, perKeyMax: 1.5, totalMax: 1 }), /perKeyMax expected a positive integer/)
  const guard = new ReplayGuard({ windowMs: 1, perKeyMax: 1, totalMax: 1 })
  assert.throws(() => guard.add('', 'x', 0), /key expected a string of 1 to 128 characters/)
  assert.throws(() => guard.add('k', 'x'.repeat(129), 0), /id expected a string/)
  assert.throws(() => guard.add('k', new Uint8Array(0), 0), /id expected 1 to 64 bytes/)
  assert.throws(() => guard.add('k', 'x', Number.NaN), /nowMs expected a finite number/)
})

/** The guard's rules written plainly (a list in time order), to check the compact one against. */
class ReferenceGuard {
  private entries: Array<{ key: string, id: string, atMs: number }> = []
  private lastMs = -Infinity
  constructor (private readonly o: { windowMs: number, perKeyMax: number, totalMax: number }) {}
  get size (): number { return this.entries.length }
  has (key: string, id: string, nowMs?: number): boolean {
    const entry = this.entries.find((e) => e.key === key && e.id === id)
    if (entry === undefined) return false
    return nowMs === undefined || nowMs - entry.atMs <= this.o.windowMs
  }

  add (key: string, id: string, nowMs: number): void {
    const atMs = Math.max(nowMs, this.lastMs)
    this.lastMs = atMs
    this.entries = this.entries.filter((e) => !(atMs - e.atMs > this.o.windowMs) && !(e.key === key && e.id === id))
    this.entries.push({ key, id, atMs })
    const mine = this.entries.filter((e) => e.key === key)
    if (mine.length > this.o.perKeyMax) this.entries.splice(this.entries.indexOf(mine[0]), 1)
    if (this.entries.length > this.o.totalMax) this.entries.shift()
  }

  clear (): void { this.entries = [] }
}

test('the compact guard keeps the plain rules, through ring rebuilds and key numbers reused', () => {
  let seed = 11
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  for (const options of [
    { windowMs: 50, perKeyMax: 3, totalMax: 20 },
    { windowMs: 400, perKeyMax: 700, totalMax: 1500 }, // past the ring's first 1024 slots
    { windowMs: 100_000, perKeyMax: 40, totalMax: 1300 },
  ]) {
    const guard = new ReplayGuard(options)
    const reference = new ReferenceGuard(options)
    let now = 0
    for (let op = 0; op < 12_000; op++) {
      now += random(4) - 1 // sometimes backwards
      const key = `k${random(op % 3000 < 1500 ? 40 : 3)}`
      const idBytes = Uint8Array.of(random(6), random(200))
      const id = random(3) === 0 ? `x${random(50)}` : toHex(idBytes)
      const given = random(2) === 0 && id.startsWith('x') === false ? idBytes : id
      if (random(3) !== 0) {
        guard.add(key, given, now)
        reference.add(key, id, now)
      } else {
        const at = random(2) === 0 ? undefined : now + random(100)
        assert.equal(guard.has(key, given, at), reference.has(key, id, at), `op ${op}`)
      }
      if (op === 9000) {
        guard.clear()
        reference.clear()
      }
      assert.equal(guard.size, reference.size, `op ${op}`)
    }
  }
})

test('bytes and their lowercase hex are one id; other texts are ids as they are', () => {
  const guard = new ReplayGuard({ windowMs: WINDOW, perKeyMax: 10, totalMax: 100 })
  guard.add(DEVICE_ID, Uint8Array.of(0xab, 0x01), 0)
  assert.equal(guard.has(DEVICE_ID, 'ab01'), true)
  assert.equal(guard.has(DEVICE_ID, 'AB01'), false)
  guard.add(DEVICE_ID, 'AB01', 0)
  guard.add(DEVICE_ID, 'ab0', 0) // odd length: not bytes
  assert.equal(guard.size, 3)
  assert.equal(guard.has(DEVICE_ID, Uint8Array.of(0xab, 0x01, 0x00)), false)
})

test('memory goes back once the pairs have expired', () => {
  const guard = new ReplayGuard({ windowMs: 1000, perKeyMax: 100_000, totalMax: 100_000 })
  for (let i = 0; i < 60_000; i++) guard.add(`k${i % 500}`, `id${i}`, 0)
  const internals = guard as unknown as { capacity: number, keyNumbers: Map<string, number> }
  assert.ok(internals.capacity >= 60_000)
  guard.add('late', 'one', 5000)
  assert.equal(guard.size, 1)
  assert.ok(internals.capacity <= 1024, `ring of ${internals.capacity} slots`)
  assert.equal(internals.keyNumbers.size, 1)
})
