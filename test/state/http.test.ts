/**
 * GET and PATCH /v1/devices/{id}/state on a real hub: merge semantics, versions, the
 * version check under concurrency, and every 4xx the routes give.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { startTestHub, enrollPrincipal, makeKeyPair } from '../helpers/hub.js'
import { call, statePath, type Answer } from './helpers.js'

function assertError (answer: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body))
  assert.equal(answer.body.statusCode, status)
  assert.equal(answer.body.code, code)
  if (message) assert.match(answer.body.message, message)
}

test('GET gives the whole document; PATCH merges desired (null deletes), increments the version and timestamps fields', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const path = statePath(device.id)

  const empty = await call(hub, 'GET', path)
  assert.equal(empty.status, 200)
  assert.deepEqual(empty.body, { desired: {}, reported: {}, delta: {}, version: 0, meta: { desired: {}, reported: {} } })

  const before = Date.now()
  const first = await call(hub, 'PATCH', path, { body: { desired: { led: 'on', fan: { speed: 2, mode: 'auto' }, tags: ['a', null] } } })
  assert.equal(first.status, 200)
  assert.equal(first.body.version, 1)
  assert.deepEqual(first.body.desired, { led: 'on', fan: { speed: 2, mode: 'auto' }, tags: ['a', null] })
  assert.deepEqual(first.body.delta, first.body.desired)
  const stamp = first.body.meta.desired.led as number
  assert.ok(Number.isSafeInteger(stamp) && stamp >= before, 'a timestamp in ms')
  assert.deepEqual(first.body.meta.desired, { led: stamp, fan: { speed: stamp, mode: stamp }, tags: stamp })

  const second = await call(hub, 'PATCH', path, { body: { desired: { fan: { mode: null }, led: null, new: 1 }, version: 1 } })
  assert.equal(second.status, 200)
  assert.deepEqual(second.body.desired, { fan: { speed: 2 }, tags: ['a', null], new: 1 })
  assert.equal(second.body.version, 2)
  assert.deepEqual(Object.keys(second.body.meta.desired).sort(), ['fan', 'new', 'tags'])
  assert.deepEqual((await call(hub, 'GET', path)).body, second.body)

  // Devices change reported over MQTT; here the hub's own service stands in for one.
  await hub.state.report(device.id, { fan: { speed: 2 }, tags: ['a'] })
  const after = await call(hub, 'GET', path)
  assert.deepEqual(after.body.delta, { tags: ['a', null], new: 1 })
  assert.equal(after.body.version, 3)
})

test('two concurrent PATCHes with the same expected version: one 200, one 409, and the document is the winner\'s merge', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const path = statePath(device.id)
  assert.equal((await call(hub, 'PATCH', path, { body: { desired: { shared: 'base', keep: true } } })).status, 200)

  const patches = [
    { shared: 'from-a', a: 1, keep: null },
    { shared: 'from-b', b: 2 },
  ]
  const answers = await Promise.all(patches.map(desired => call(hub, 'PATCH', path, { body: { desired, version: 1 } })))
  assert.deepEqual(answers.map(a => a.status).sort(), [200, 409])
  const winner = answers.findIndex(a => a.status === 200)
  const loser = answers[1 - winner]
  assertError(loser, 409, 'MN_ERR_CONFLICT', /is at version 2, not 1/)
  assert.equal(loser.body.version, 2, 'the 409 says the current version')
  assert.equal(loser.body.error, 'Conflict')

  const expected = winner === 0 ? { shared: 'from-a', a: 1 } : { shared: 'from-b', b: 2, keep: true }
  const document = (await call(hub, 'GET', path)).body
  assert.deepEqual(document.desired, expected, 'exactly the winner\'s merge over version 1')
  assert.equal(document.version, 2)
  assert.deepEqual(answers[winner].body, document)

  // The loser retries at the version it was told, and its change lands on top.
  const retry = await call(hub, 'PATCH', path, { body: { desired: patches[1 - winner], version: loser.body.version } })
  assert.equal(retry.status, 200)
  assert.equal(retry.body.version, 3)
})

test('many concurrent PATCHes at one version: exactly one wins; without a version, all are applied, none lost', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const path = statePath(device.id)
  const racing = await Promise.all(Array.from({ length: 12 }, (_, i) => call(hub, 'PATCH', path, { body: { desired: { [`k${i}`]: i }, version: 0 } })))
  assert.equal(racing.filter(a => a.status === 200).length, 1)
  assert.equal(racing.filter(a => a.status === 409).length, 11)
  assert.ok(racing.filter(a => a.status === 409).every(a => a.body.version === 1))

  const unconditional = await Promise.all(Array.from({ length: 12 }, (_, i) => call(hub, 'PATCH', path, { body: { desired: { [`u${i}`]: i } } })))
  assert.ok(unconditional.every(a => a.status === 200))
  assert.deepEqual(unconditional.map(a => a.body.version).sort((x, y) => x - y), Array.from({ length: 12 }, (_, i) => i + 2))
  const document = (await call(hub, 'GET', path)).body
  assert.equal(document.version, 13)
  for (let i = 0; i < 12; i++) assert.equal(document.desired[`u${i}`], i)
})

test('404: unknown ids, ids that are not ids, and principals that are not devices', async t => {
  const hub = await startTestHub(t)
  const service = await enrollPrincipal(hub, 'service')
  for (const method of ['GET', 'PATCH']) {
    const body = method === 'PATCH' ? { desired: { a: 1 } } : undefined
    assertError(await call(hub, method, statePath(makeKeyPair().id), { body }), 404, 'MN_ERR_NOT_FOUND', /no principal with id/)
    assertError(await call(hub, method, statePath('not-an-id'), { body }), 404, 'MN_ERR_NOT_FOUND')
    assertError(await call(hub, method, statePath(service.id), { body }), 404, 'MN_ERR_NOT_FOUND', /is a service, not a device/)
  }
  // Other methods and paths under the document are not routes.
  const device = await enrollPrincipal(hub)
  assertError(await call(hub, 'PUT', statePath(device.id), { body: { desired: {} } }), 404, 'MN_ERR_NOT_FOUND')
  assertError(await call(hub, 'GET', `${statePath(device.id)}/desired`), 404, 'MN_ERR_NOT_FOUND')
})

test('409: a wrong expected version, including one ahead; nothing changes', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const path = statePath(device.id)
  for (const version of [1, 7]) {
    const answer = await call(hub, 'PATCH', path, { body: { desired: { a: 1 }, version } })
    assertError(answer, 409, 'MN_ERR_CONFLICT', new RegExp(`is at version 0, not ${version}`))
    assert.equal(answer.body.version, 0)
  }
  assert.equal((await call(hub, 'GET', path)).body.version, 0)
  assert.equal((await call(hub, 'PATCH', path, { body: { desired: { a: 1 }, version: 0 } })).status, 200)
})

test('400: bodies that are not { desired: object, version?: integer }, values JSON cannot hold, nesting past the cap', async t => {
  const hub = await startTestHub(t, { state: { depthMax: 3 } })
  const device = await enrollPrincipal(hub)
  const path = statePath(device.id)
  const cases: Array<[unknown, RegExp]> = [
    [{}, /body is missing the required property "desired"/],
    [{ desired: [] }, /body\.desired must be object/],
    [{ desired: null }, /body\.desired must be object/],
    [{ desired: 'on' }, /body\.desired must be object/],
    [{ desired: {}, reported: {} }, /body has an unknown property "reported"/],
    [{ desired: {}, version: -1 }, /body\.version must be >= 0/],
    [{ desired: {}, version: 1.5 }, /body\.version must be integer/],
    [{ desired: {}, version: '1' }, /body\.version must be integer/],
    [{ desired: {}, version: null }, /body\.version must be integer/],
    [{ desired: { a: { b: { c: {} } } } }, /^desired\.a\.b\.c nests deeper than 3 levels$/],
    ['{"desired": {"n": 1e400}}', /^desired\.n is Infinity/],
    ['{"desired": {"__proto__": {"x": 1}}}', /not valid JSON/], // Fastify's parser refuses the key outright
    ['{"desired": ', /JSON/],
    ['', /body must be object/],
  ]
  for (const [body, message] of cases) {
    assertError(await call(hub, 'PATCH', path, { body }), 400, 'MN_ERR_BAD_REQUEST', message)
  }
  assert.equal((await call(hub, 'GET', path)).body.version, 0, 'nothing was written')
})

test('413: a document over the size cap, and a body over the HTTP limit; 415: a body that is not JSON', async t => {
  const hub = await startTestHub(t, { state: { documentBytesMax: 1_024 } })
  const device = await enrollPrincipal(hub)
  const path = statePath(device.id)
  assert.equal((await call(hub, 'PATCH', path, { body: { desired: { big: 'x'.repeat(900) } } })).status, 200)
  assertError(await call(hub, 'PATCH', path, { body: { desired: { more: 'y'.repeat(200) } } }), 413, 'MN_ERR_PAYLOAD_TOO_LARGE', /more than the 1024 allowed/)
  assertError(await call(hub, 'PATCH', path, { body: { desired: { huge: 'z'.repeat(100 * 1024) } } }), 413, 'MN_ERR_PAYLOAD_TOO_LARGE', /request body is larger than/)
  assertError(await call(hub, 'PATCH', path, { body: 'desired=1', headers: { 'content-type': 'text/plain' } }), 415, 'MN_ERR_UNSUPPORTED_MEDIA_TYPE')
  const document = (await call(hub, 'GET', path)).body
  assert.equal(document.version, 1)
  assert.deepEqual(Object.keys(document.desired), ['big'])
})

test('401: no token, a wrong token, or another scheme; on every method, unknown ids alike', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  for (const path of [statePath(device.id), statePath(makeKeyPair().id)]) {
    for (const token of [null, 'wrong-token-0123456789', '']) {
      for (const method of ['GET', 'PATCH']) {
        const answer = await call(hub, method, path, { token, body: method === 'PATCH' ? { desired: { a: 1 } } : undefined })
        assertError(answer, 401, 'MN_ERR_UNAUTHORIZED')
        assert.match(answer.headers.get('www-authenticate') ?? '', /Bearer/)
      }
    }
  }
  assertError(await call(hub, 'GET', statePath(device.id), { headers: { authorization: `Basic ${hub.adminToken}` } }), 401, 'MN_ERR_UNAUTHORIZED')
  assert.equal((await call(hub, 'GET', statePath(device.id))).body.version, 0, 'nothing was written')
})

test('401 comes before the body is read: a PATCH that never sends its body is answered at once', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: hub.httpPort,
      method: 'PATCH',
      path: statePath(device.id),
      headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) },
    }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    t.after(() => req.destroy())
    // Only the start of a 10 MiB body: the answer cannot wait for the rest.
    req.write('{"desired": {"a": ')
  })
  assert.equal(answer.status, 401)
  assert.equal(JSON.parse(answer.body).code, 'MN_ERR_UNAUTHORIZED')
})
