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
  // Internal queues hold dead entries only up to about as many as live ones.
  const internals = guard as unknown as { queue: { items: unknown[], head: number } }
  assert.ok(internals.queue.items.length - internals.queue.head <= 2 * 50_000 + 64)
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
