import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RateCounters } from '../../src/cage/rate-limit.js'

test('a key gets max requests per window, then a Retry-After that holds', () => {
  const counters = new RateCounters(3, 10_000, 100)
  const t0 = 1_000_000 // the start of a window
  assert.equal(counters.hit('a', t0), 0)
  assert.equal(counters.hit('a', t0 + 1), 0)
  assert.equal(counters.hit('a', t0 + 2), 0)
  const wait = counters.hit('a', t0 + 3)
  assert.ok(wait >= 10 && wait <= 11, `retry after ${wait}`)
  assert.equal(counters.hit('b', t0 + 3), 0, 'other keys are counted apart')
  // Just before the promised time: still refused; at it: admitted.
  assert.notEqual(counters.hit('a', t0 + 3 + wait * 1000 - 1500), 0)
  assert.equal(counters.hit('a', t0 + 3 + wait * 1000), 0)
})

test('the sliding estimate stops a burst across a window boundary', () => {
  const counters = new RateCounters(10, 10_000, 100)
  const t0 = 2_000_000
  for (let i = 0; i < 10; i++) assert.equal(counters.hit('k', t0 + 9_000 + i), 0)
  // A fixed window would admit ten more at once here; the estimate, still ~10, admits one.
  assert.equal(counters.hit('k', t0 + 10_001), 0)
  assert.notEqual(counters.hit('k', t0 + 10_002), 0)
  // Half a window on, half of the previous window's count has faded: 5 + 1 counted, four more fit.
  let admitted = 0
  for (let i = 0; i < 10; i++) if (counters.hit('k', t0 + 15_000) === 0) admitted++
  assert.equal(admitted, 4)
  // Two windows on, everything has faded.
  for (let i = 0; i < 10; i++) assert.equal(counters.hit('k', t0 + 30_000), 0)
})

test('refused requests are not counted, and the key table is bounded', () => {
  const counters = new RateCounters(1, 1_000, 3)
  assert.equal(counters.hit('a', 0), 0)
  for (let i = 0; i < 100; i++) assert.notEqual(counters.hit('a', 10), 0)
  assert.equal(counters.hit('a', 2_000), 0)
  for (const key of ['b', 'c', 'd', 'e']) counters.hit(key, 2_000)
  assert.equal(counters.size, 3)
  // Sweeping drops stale keys before forgetting live ones.
  counters.hit('f', 10_000)
  assert.ok(counters.size <= 3)
  assert.throws(() => new RateCounters(0, 1000, 1), /max must be a positive integer/)
})
