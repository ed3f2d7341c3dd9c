/** The identity tree through the real hub: a device adds its commitment, anyone reads roots and leaves. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { signHttpRequest } from '../../src/protocol/index.js'
import { startTestHub, enrollPrincipal } from '../helpers/hub.js'

test('a device adds its own commitment with a signed request; roots and leaves are public', async t => {
  const hub = await startTestHub(t)
  const device = await enrollPrincipal(hub)
  const base = `http://127.0.0.1:${hub.httpPort}`
  const body = JSON.stringify({ commitment: '12345678901234567890' })
  const added = await fetch(`${base}/v1/zk/commitments`, {
    method: 'POST',
    headers: { ...signHttpRequest(device.id, device.sign, { method: 'POST', target: '/v1/zk/commitments', body }), 'content-type': 'application/json' },
    body,
  })
  assert.equal(added.status, 201)
  const again = await fetch(`${base}/v1/zk/commitments`, {
    method: 'POST',
    headers: { ...signHttpRequest(device.id, device.sign, { method: 'POST', target: '/v1/zk/commitments', body }), 'content-type': 'application/json' },
    body,
  })
  assert.equal(again.status, 409)
  const roots = await (await fetch(`${base}/v1/zk/roots`)).json() as { leafCount: number, root: string }
  assert.equal(roots.leafCount, 1)
  const leaves = await (await fetch(`${base}/v1/zk/leaves?after=0`)).json() as { commitments: string[], root: string }
  assert.deepEqual(leaves.commitments, ['12345678901234567890'])
  assert.equal(leaves.root, roots.root)
  assert.equal((await fetch(`${base}/v1/zk/commitments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status, 401)
})
