import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HubHttpClient, generateKeyPair, HttpError } from '../../device-sdk/index.js'
import { startTestHub } from '../helpers/hub.js'

test('the SDK signs its HTTP requests with the device key', async t => {
  const hub = await startTestHub(t)
  const keyPair = generateKeyPair()
  const baseUrl = `http://127.0.0.1:${hub.httpPort}`
  const client = new HubHttpClient({ baseUrl, keyPair })
  await assert.rejects(client.me(), (err: unknown) => err instanceof HttpError && err.status === 401)
  const res = await fetch(`${baseUrl}/v1/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: Buffer.from(keyPair.publicKey).toString('hex'), role: 'device' }),
  })
  assert.equal(res.status, 201)
  const me = await client.me()
  assert.equal(me.principal?.id, keyPair.id)
  await assert.rejects(client.request('GET', '/v1/devices'), (err: unknown) => err instanceof HttpError && err.status === 403 && err.code === 'MN_ERR_FORBIDDEN')
})
