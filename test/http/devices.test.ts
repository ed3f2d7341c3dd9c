import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'
import { test } from 'node:test'
import { newPublicKeyHex, startHub, TOKEN, type Answer } from './helpers.js'

function assertError (answer: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body))
  assert.match(answer.headers.get('content-type') ?? '', /^application\/json/)
  assert.deepEqual(Object.keys(answer.body).sort(), ['code', 'error', 'message', 'statusCode'])
  assert.equal(answer.body.statusCode, status)
  assert.equal(answer.body.code, code)
  assert.equal(typeof answer.body.error, 'string')
  if (message) assert.match(answer.body.message, message)
}

test('POST enrols a key: 201 with the record, and GET returns it', async (t) => {
  const hub = await startHub(t)
  const publicKey = await newPublicKeyHex()
  const before = Date.now()
  const created = await hub.call('POST', '/v1/devices', { body: { publicKey: publicKey.toUpperCase(), role: 'device', name: 'pump 7' } })
  assert.equal(created.status, 201)
  const id = createHash('sha256').update(Buffer.from(publicKey, 'hex')).digest().subarray(0, 16).toString('hex')
  assert.deepEqual(Object.keys(created.body).sort(), ['created', 'id', 'name', 'publicKey', 'revoked', 'role'])
  assert.equal(created.body.id, id)
  assert.equal(created.body.publicKey, publicKey) // lowercase whatever was sent
  assert.equal(created.body.role, 'device')
  assert.equal(created.body.name, 'pump 7')
  assert.equal(created.body.revoked, null)
  assert.ok(created.body.created >= before && created.body.created <= Date.now())
  assert.equal(created.headers.get('location'), `/v1/devices/${id}`)

  const fetched = await hub.call('GET', `/v1/devices/${id}`)
  assert.equal(fetched.status, 200)
  assert.deepEqual(fetched.body, created.body)

  const unnamed = await hub.call('POST', '/v1/devices', { body: { publicKey: await newPublicKeyHex(), role: 'node' } })
  assert.equal(unnamed.status, 201)
  assert.equal(unnamed.body.name, null)
})

test('POST refuses a malformed body or key with 400', async (t) => {
  const hub = await startHub(t)
  const publicKey = await newPublicKeyHex()
  const cases: Array<[string, unknown, RegExp]> = [
    ['malformed JSON', '{"publicKey": ', /not valid JSON/],
    ['empty body', '', /body must be object/],
    ['not an object', '[]', /body must be object/],
    ['missing publicKey', { role: 'device' }, /missing the required property "publicKey"/],
    ['missing role', { publicKey }, /missing the required property "role"/],
    ['extra field', { publicKey, role: 'device', admin: true }, /unknown property "admin"/],
    ['bad hex', { publicKey: 'g' + publicKey.slice(1), role: 'device' }, /body\.publicKey must be 64 hex characters/],
    ['too short', { publicKey: publicKey.slice(2), role: 'device' }, /body\.publicKey must be 64 hex characters/],
    ['too long', { publicKey: publicKey + '00', role: 'device' }, /body\.publicKey must be 64 hex characters/],
    ['key as number', { publicKey: 5, role: 'device' }, /body\.publicKey must be string/],
    ['not a point', { publicKey: '02' + '00'.repeat(31), role: 'device' }, /not a valid ed25519 point/],
    ['small order', { publicKey: '01' + '00'.repeat(31), role: 'device' }, /small-order/],
    ['bad role', { publicKey, role: 'admin' }, /body\.role must be one of device, service, node/],
    ['name not a string', { publicKey, role: 'device', name: 5 }, /body\.name must be string/],
    ['empty name', { publicKey, role: 'device', name: '' }, /body\.name/],
    ['long name', { publicKey, role: 'device', name: 'n'.repeat(129) }, /body\.name must NOT have more than 128 characters/],
    ['null name', { publicKey, role: 'device', name: null }, /body\.name must be string/],
    ['prototype pollution', `{"publicKey":"${publicKey}","role":"device","__proto__":{"x":1}}`, /./],
  ]
  for (const [what, body, message] of cases) {
    const answer = await hub.call('POST', '/v1/devices', { body })
    assert.equal(answer.status, 400, what)
    assertError(answer, 400, 'MN_ERR_BAD_REQUEST', message)
  }
  assert.equal(await hub.store.principals.count(), 0)
})

test('POST with a body that is not JSON is 415', async (t) => {
  const hub = await startHub(t)
  const answer = await hub.call('POST', '/v1/devices', { body: 'publicKey=ab', headers: { 'content-type': 'text/plain' } })
  assertError(answer, 415, 'MN_ERR_UNSUPPORTED_MEDIA_TYPE')
})

test('POST of a body over the limit is 413', async (t) => {
  const hub = await startHub(t, { bodyLimitBytes: 1024 })
  const answer = await hub.call('POST', '/v1/devices', { body: { publicKey: 'a', role: 'device', name: 'x'.repeat(2000) } })
  assertError(answer, 413, 'MN_ERR_PAYLOAD_TOO_LARGE', /larger than 1024 bytes/)
})

test('a key enrolled before is a 409: again, in upper case, and after revocation', async (t) => {
  const hub = await startHub(t)
  const publicKey = await newPublicKeyHex()
  const created = await hub.call('POST', '/v1/devices', { body: { publicKey, role: 'device' } })
  assert.equal(created.status, 201)
  assertError(await hub.call('POST', '/v1/devices', { body: { publicKey, role: 'device' } }), 409, 'MN_ERR_CONFLICT', new RegExp(created.body.id))
  assertError(await hub.call('POST', '/v1/devices', { body: { publicKey: publicKey.toUpperCase(), role: 'service' } }), 409, 'MN_ERR_CONFLICT')
  assert.equal((await hub.call('DELETE', `/v1/devices/${created.body.id}`)).status, 200)
  assertError(await hub.call('POST', '/v1/devices', { body: { publicKey, role: 'device' } }), 409, 'MN_ERR_CONFLICT')
  assert.equal(await hub.store.principals.count(), 1)
})

test('every /v1/devices route needs the admin token: 401 otherwise', async (t) => {
  const hub = await startHub(t)
  const { body: { id } } = await hub.call('POST', '/v1/devices', { body: { publicKey: await newPublicKeyHex(), role: 'device' } })
  const routes: Array<[string, string, unknown?]> = [
    ['POST', '/v1/devices', { publicKey: await newPublicKeyHex(), role: 'device' }],
    ['GET', '/v1/devices'],
    ['GET', `/v1/devices/${id}`],
    ['DELETE', `/v1/devices/${id}`],
    ['GET', '/v1/devices/unknown/path'],
  ]
  const credentials: Array<[string, Record<string, string>]> = [
    ['no header', {}],
    ['wrong token', { authorization: `Bearer ${TOKEN}x` }],
    ['a prefix of the token', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['wrong scheme', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }],
    ['token without scheme', { authorization: TOKEN }],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['two tokens', { authorization: `Bearer ${TOKEN} ${TOKEN}` }],
  ]
  for (const [method, path, body] of routes) {
    for (const [what, headers] of credentials) {
      const answer = await hub.call(method, path, { token: null, headers, body })
      assertError(answer, 401, 'MN_ERR_UNAUTHORIZED')
      assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/, `${method} ${path} ${what}`)
    }
  }
  // Nothing changed: one principal, not revoked; no session was closed.
  assert.equal(await hub.store.principals.count(), 1)
  assert.equal((await hub.store.principals.get(id))!.revoked, null)
  assert.deepEqual(hub.revoked, [])
  // The scheme is case-insensitive (RFC 7235).
  assert.equal((await hub.call('GET', `/v1/devices/${id}`, { token: null, headers: { authorization: `bearer ${TOKEN}` } })).status, 200)
})

test('a request without the token gets 401 before its body is read', async (t) => {
  const hub = await startHub(t, { bodyLimitBytes: 1024 })
  // A body that would be a 400 or a 413 is a 401: the parser never ran.
  assertError(await hub.call('POST', '/v1/devices', { token: null, body: '{not json' }), 401, 'MN_ERR_UNAUTHORIZED')
  assertError(await hub.call('POST', '/v1/devices', { token: null, body: 'x'.repeat(4 * 1024 * 1024) }), 401, 'MN_ERR_UNAUTHORIZED')
  assertError(await hub.call('POST', '/v1/devices', { body: '{not json' }), 400, 'MN_ERR_BAD_REQUEST')
  assertError(await hub.call('POST', '/v1/devices', { body: 'x'.repeat(4 * 1024 * 1024) }), 413, 'MN_ERR_PAYLOAD_TOO_LARGE')

  // Headers announcing a body that never comes: the 401 is sent at once, without waiting
  // for the body, and the hub hangs up rather than wait to drain it.
  const socket = connect(hub.port, '127.0.0.1')
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  const closed = once(socket, 'close')
  socket.write('POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n')
  const [chunk] = await once(socket, 'data') as [Buffer]
  assert.match(chunk.toString(), /^HTTP\/1\.1 401 /)
  assert.match(chunk.toString(), /\r\nconnection: close\r\n/i)
  await closed
})

test('GET and DELETE of an unknown id are 404', async (t) => {
  const hub = await startHub(t)
  assertError(await hub.call('GET', `/v1/devices/${'0'.repeat(32)}`), 404, 'MN_ERR_NOT_FOUND', /no principal/)
  assertError(await hub.call('GET', '/v1/devices/not-an-id'), 404, 'MN_ERR_NOT_FOUND')
  assertError(await hub.call('DELETE', `/v1/devices/${'0'.repeat(32)}`), 404, 'MN_ERR_NOT_FOUND')
  assert.deepEqual(hub.revoked, [])
})

test('DELETE revokes at once, tells the hub, and is 200 again when repeated', async (t) => {
  const hub = await startHub(t)
  const { body: created } = await hub.call('POST', '/v1/devices', { body: { publicKey: await newPublicKeyHex(), role: 'device' } })
  const before = Date.now()
  const first = await hub.call('DELETE', `/v1/devices/${created.id}`)
  assert.equal(first.status, 200)
  assert.deepEqual({ ...first.body, revoked: null }, created)
  assert.ok(first.body.revoked >= before && first.body.revoked <= Date.now())
  assert.deepEqual(hub.revoked, [created.id])

  const second = await hub.call('DELETE', `/v1/devices/${created.id}`)
  assert.equal(second.status, 200)
  assert.equal(second.body.revoked, first.body.revoked)
  assert.deepEqual(hub.revoked, [created.id, created.id])
  assert.deepEqual((await hub.call('GET', `/v1/devices/${created.id}`)).body, first.body)

  // Clients that send a JSON content type with no body on DELETE are not refused.
  const third = await hub.call('DELETE', `/v1/devices/${created.id}`, { headers: { 'content-type': 'application/json', 'content-length': '0' } })
  assert.equal(third.status, 200)
})

test('a failing onRevoke does not undo or fail the revocation', async (t) => {
  const hub = await startHub(t, { onRevoke: () => { throw new Error('broker gone') } })
  const { body: created } = await hub.call('POST', '/v1/devices', { body: { publicKey: await newPublicKeyHex(), role: 'device' } })
  const answer = await hub.call('DELETE', `/v1/devices/${created.id}`)
  assert.equal(answer.status, 200)
  assert.notEqual((await hub.store.principals.get(created.id))!.revoked, null)
  assert.ok(hub.lines.some((line) => line.includes('onRevoke failed') && line.includes('broker gone')))
})

test('GET /v1/devices lists in pages and filters', async (t) => {
  const hub = await startHub(t)
  const created = []
  for (let i = 0; i < 5; i++) {
    const { body } = await hub.call('POST', '/v1/devices', { body: { publicKey: await newPublicKeyHex(), role: i < 2 ? 'service' : 'device' } })
    created.push(body)
  }
  await hub.call('DELETE', `/v1/devices/${created[0].id}`)
  await hub.call('DELETE', `/v1/devices/${created[4].id}`)
  const ids = created.map((p) => p.id).sort()

  const all = await hub.call('GET', '/v1/devices')
  assert.equal(all.status, 200)
  assert.deepEqual(all.body.items.map((p: { id: string }) => p.id), ids)
  assert.equal(all.body.next, null)

  const seen: string[] = []
  let path = '/v1/devices?limit=2'
  for (let pages = 0; pages < 5; pages++) {
    const page = await hub.call('GET', path)
    assert.equal(page.status, 200)
    assert.ok(page.body.items.length <= 2)
    seen.push(...page.body.items.map((p: { id: string }) => p.id))
    if (page.body.next === null) break
    assert.equal(page.body.next, page.body.items[page.body.items.length - 1].id)
    path = `/v1/devices?limit=2&after=${page.body.next}`
  }
  assert.deepEqual(seen, ids)
  // Exactly one page's worth: no empty page is promised.
  assert.equal((await hub.call('GET', '/v1/devices?limit=5')).body.next, null)

  const idsOf = async (query: string) => (await hub.call('GET', `/v1/devices?${query}`)).body.items.map((p: { id: string }) => p.id)
  assert.deepEqual(await idsOf('role=service'), [created[0].id, created[1].id].sort())
  assert.deepEqual(await idsOf('revoked=true'), [created[0].id, created[4].id].sort())
  assert.deepEqual(await idsOf('revoked=false'), [created[1].id, created[2].id, created[3].id].sort())
  assert.deepEqual(await idsOf('role=device&revoked=true'), [created[4].id])
  assert.deepEqual(await idsOf(`after=${ids[4]}`), [])

  const bad: Array<[string, RegExp]> = [
    ['limit=0', /querystring\.limit must be an integer from 1 to 1000/],
    ['limit=1001', /querystring\.limit must be an integer from 1 to 1000/],
    ['limit=abc', /querystring\.limit/],
    ['limit=1&limit=2', /querystring\.limit must be string/],
    ['revoked=yes', /querystring\.revoked must be one of true, false/],
    ['role=admin', /querystring\.role must be one of device, service, node/],
    ['after=' + 'a'.repeat(65), /querystring\.after/],
    ['roles=device', /querystring has an unknown property "roles"/],
  ]
  for (const [query, message] of bad) {
    assertError(await hub.call('GET', `/v1/devices?${query}`), 400, 'MN_ERR_BAD_REQUEST', message)
  }
})

test('unknown routes are 404 JSON', async (t) => {
  const hub = await startHub(t)
  assertError(await hub.call('GET', '/nope', { token: null }), 404, 'MN_ERR_NOT_FOUND', /route GET \/nope not found/)
  assertError(await hub.call('PUT', '/v1/devices/abc'), 404, 'MN_ERR_NOT_FOUND')
  assertError(await hub.call('GET', '/v1/devices/a/b'), 404, 'MN_ERR_NOT_FOUND')
  assertError(await hub.call('GET', '/%zz', { token: null }), 400, 'MN_ERR_BAD_REQUEST')
})

test('the admin token is never logged', async (t) => {
  const hub = await startHub(t)
  await hub.call('POST', '/v1/devices', { body: { publicKey: await newPublicKeyHex(), role: 'device' } })
  await hub.call('GET', '/v1/devices')
  await hub.call('GET', '/v1/devices', { token: 'wrong-token-wrong-token' })
  assert.ok(hub.lines.length > 0)
  const text = hub.lines.join('')
  assert.ok(!text.includes(TOKEN))
  assert.ok(!text.includes('wrong-token-wrong-token'))
  assert.ok(hub.lines.every((line) => JSON.parse(line).component === 'http'))
})

test('a failure of ours is a 500 that tells the client nothing and the log everything', async (t) => {
  const hub = await startHub(t)
  await hub.store.close() // the database is gone under the server
  const answer = await hub.call('GET', `/v1/devices/${'0'.repeat(32)}`)
  assertError(answer, 500, 'MN_ERR_INTERNAL', /^internal error$/)
  assert.ok(hub.lines.some((line) => line.includes('request failed') && line.includes('not open')))
})
