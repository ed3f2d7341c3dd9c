/**
 * The `state` slice of the typed config: defaults, overrides, and what is refused.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveConfig, DEFAULT_CONFIG } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'

test('state limits: defaults, partial overrides, frozen', () => {
  assert.deepEqual(DEFAULT_CONFIG.state, { documentBytesMax: 8 * 1024, depthMax: 8 })
  const config = resolveConfig({ state: { depthMax: 4 } })
  assert.deepEqual(config.state, { documentBytesMax: 8 * 1024, depthMax: 4 })
  assert.ok(Object.isFrozen(config.state))
  assert.deepEqual(resolveConfig({ state: { documentBytesMax: 1_024, depthMax: undefined } }).state, { documentBytesMax: 1_024, depthMax: 8 })
})

test('state limits: refused when not positive integers, unknown, too deep for an Ack, or too large for one', () => {
  const refused: Array<[unknown, RegExp]> = [
    [{ documentBytesMax: 0 }, /state\.documentBytesMax must be a positive integer/],
    [{ documentBytesMax: 1.5 }, /state\.documentBytesMax must be a positive integer/],
    [{ depthMax: '8' }, /state\.depthMax must be a positive integer/],
    [{ depthMax: 22 }, /state\.depthMax must be at most 21/],
    [{ documentBytesMax: 8 * 1024 + 1 }, /state\.documentBytesMax must be at most protocol\.payloadBytesMax \/ 8 \(8192\)/],
    [{ bytesMax: 1 }, /unknown config key "state\.bytesMax"/],
  ]
  for (const [state, message] of refused) {
    assert.throws(() => resolveConfig({ state } as never), (err: unknown) => err instanceof ConfigError && message.test(err.message), String(message))
  }
  assert.equal(resolveConfig({ state: { depthMax: 21 } }).state.depthMax, 21)
  // The cap follows the payload limit.
  assert.equal(resolveConfig({ protocol: { payloadBytesMax: 256 * 1024 }, state: { documentBytesMax: 32 * 1024 } }).state.documentBytesMax, 32 * 1024)
  assert.throws(() => resolveConfig({ protocol: { payloadBytesMax: 16 * 1024 }, state: { documentBytesMax: 4096 } }), /state\.documentBytesMax must be at most protocol\.payloadBytesMax \/ 8 \(2048\)/)
  // Unless set, the cap shrinks with the payload limit.
  assert.equal(resolveConfig({ protocol: { payloadBytesMax: 16 * 1024 } }).state.documentBytesMax, 2048)
  assert.equal(resolveConfig({ protocol: { payloadBytesMax: 1024 } }).state.documentBytesMax, 128)
})
