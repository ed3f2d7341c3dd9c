import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveConfig, DEFAULT_CONFIG } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { startTestHub } from '../helpers/hub.js'

test('defaults serve one machine, and the result is frozen', () => {
  const config = resolveConfig()
  assert.equal(config.mqttPort, 1883)
  assert.equal(config.httpPort, 8080)
  assert.equal(config.dataDir, './data')
  assert.equal(config.allowAnonymous, false)
  assert.equal(config.protocol.skewMs, 120_000)
  assert.equal(config.protocol.payloadBytesMax, 65_536)
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.protocol) && Object.isFrozen(config.http.corsOrigins))
  assert.deepEqual(resolveConfig({ protocol: { skewMs: 5_000 } }).protocol, { ...DEFAULT_CONFIG.protocol, skewMs: 5_000 })
})

test('every bad field is refused with a message that names it', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ nope: 1 }, /unknown config key "nope"/],
    [{ mqttPort: 70000 }, /mqttPort/],
    [{ httpPort: -1 }, /httpPort/],
    [{ host: '' }, /host/],
    [{ protocol: { skewMs: 0 } }, /protocol.skewMs/],
    [{ clients: { publishesPerSecond: 1.5 } }, /clients.publishesPerSecond/],
    [{ clients: { packetBytesMax: 1000 } }, /packetBytesMax must be larger/],
    [{ adminToken: 'short' }, /adminToken/],
    [{ logLevel: 'loud' }, /logLevel/],
    [{ http: { corsOrigins: ['not a url'] } }, /corsOrigins/],
    [{ http: { extra: true } }, /http.extra/],
    [{ mqttWsPath: 'mqtt' }, /mqttWsPath/],
  ]
  for (const [input, message] of bad) {
    assert.throws(() => resolveConfig(input as never), (err: unknown) => err instanceof ConfigError && message.test(err.message), JSON.stringify(input))
  }
})

test('CORS answers only the configured origins', async t => {
  const hub = await startTestHub(t, { http: { corsOrigins: ['https://app.example.com'] } })
  const preflight = (origin: string) => fetch(`http://127.0.0.1:${hub.httpPort}/v1/me`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'GET' },
  })
  assert.equal((await preflight('https://app.example.com')).headers.get('access-control-allow-origin'), 'https://app.example.com')
  assert.equal((await preflight('https://evil.example.com')).headers.get('access-control-allow-origin'), null)
})
