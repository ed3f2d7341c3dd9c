import { test } from 'node:test'
import assert from 'node:assert/strict'
import { backoffDelayMs, resolveReconnectOptions, DEFAULT_RECONNECT } from '../../device-sdk/backoff.js'
import { ArgumentError } from '../../device-sdk/errors.js'

test('the ceiling doubles from initialDelayMs and stops at maxDelayMs', () => {
  const options = { initialDelayMs: 100, maxDelayMs: 5_000, jitter: 0 }
  const delays = Array.from({ length: 10 }, (_, attempt) => backoffDelayMs(attempt, options, () => 0.5))
  assert.deepEqual(delays, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000, 5_000])
})

test('full jitter spans 0 to the ceiling, never beyond', () => {
  const options = { initialDelayMs: 100, maxDelayMs: 5_000, jitter: 1 }
  for (let attempt = 0; attempt < 60; attempt++) {
    const ceiling = Math.min(5_000, 100 * 2 ** attempt)
    assert.equal(backoffDelayMs(attempt, options, () => 0), ceiling, 'random 0 gives the ceiling')
    const top = backoffDelayMs(attempt, options, () => 0.999_999)
    assert.ok(top >= 0 && top <= ceiling * 0.001, `random → 1 gives about 0, got ${top}`)
  }
})

test('partial jitter keeps the delay in [ceiling × (1 − jitter), ceiling]', () => {
  const options = { initialDelayMs: 1_000, maxDelayMs: 8_000, jitter: 0.25 }
  for (let attempt = 0; attempt < 8; attempt++) {
    const ceiling = Math.min(8_000, 1_000 * 2 ** attempt)
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelayMs(attempt, options)
      assert.ok(delay >= Math.floor(ceiling * 0.75) && delay <= ceiling, `attempt ${attempt}: ${delay} outside [${ceiling * 0.75}, ${ceiling}]`)
    }
  }
})

test('huge attempt counts and negative ones stay finite and bounded', () => {
  const options = { initialDelayMs: 500, maxDelayMs: 30_000, jitter: 0 }
  assert.equal(backoffDelayMs(1e9, options), 30_000)
  assert.equal(backoffDelayMs(Number.MAX_SAFE_INTEGER, options), 30_000)
  assert.equal(backoffDelayMs(-5, options), 500)
})

test('reconnect options are validated and defaulted', () => {
  assert.deepEqual(resolveReconnectOptions(), DEFAULT_RECONNECT)
  assert.deepEqual(resolveReconnectOptions({ maxDelayMs: 1_000, jitter: undefined }), { ...DEFAULT_RECONNECT, maxDelayMs: 1_000 })
  assert.throws(() => resolveReconnectOptions({ jitter: 1.5 }), ArgumentError)
  assert.throws(() => resolveReconnectOptions({ jitter: Number.NaN }), ArgumentError)
  assert.throws(() => resolveReconnectOptions({ initialDelayMs: -1 }), ArgumentError)
  assert.throws(() => resolveReconnectOptions({ initialDelayMs: 2_000, maxDelayMs: 1_000 }), /maxDelayMs/)
})
