/**
 * An anonymous claim end to end through the real hub: a device's commitment goes into the
 * tree, the app downloads the leaves, builds its path and proof locally, and claims over
 * HTTP without identifying itself; the same device cannot claim twice in the epoch.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as snarkjs from 'snarkjs'
import { SparseMerkleTree, claimCircuitInput, identityLeaf, nullifierHash } from '../../circuits/claim-inputs.js'
import { circuitArtifact } from '../../src/zklock/artifacts.js'
import { startTestHub, enrollPrincipal } from '../helpers/hub.js'
import { connectTestDevice } from '../helpers/device.js'
import { signHttpRequest } from '../../src/protocol/index.js'

test('a device claims anonymously once per epoch; the hub records it and credits the recipient', async t => {
  t.after(() => (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate())
  const hub = await startTestHub(t, { zk: { reward: 5 } })
  const base = `http://127.0.0.1:${hub.httpPort}`
  const admin = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }
  const device = await enrollPrincipal(hub)
  const secret = 0xc1a1a1n
  const added = await fetch(`${base}/v1/zk/commitments`, { method: 'POST', headers: admin, body: JSON.stringify({ deviceId: device.id, commitment: identityLeaf(secret).toString() }) })
  assert.equal(added.status, 201)

  // The app's side: download the leaves, rebuild the tree, prove locally.
  const leaves = await (await fetch(`${base}/v1/zk/leaves?after=0`)).json() as { commitments: string[], root: string }
  const tree = new SparseMerkleTree()
  leaves.commitments.forEach((leaf, i) => tree.set(i, BigInt(leaf)))
  assert.equal(tree.root.toString(), leaves.root)
  const { epoch } = await (await fetch(`${base}/v1/zk/epoch`)).json() as { epoch: number }
  const recipient = 'ab'.repeat(32)
  const input = claimCircuitInput({ secret, proof: tree.proof(0), root: tree.root, claim: { recipient, amount: 5n, epoch: BigInt(epoch) } })
  const { proof } = await snarkjs.groth16.fullProve(input, circuitArtifact('claim.wasm'), circuitArtifact('claim_final.zkey'))
  const nullifier = nullifierHash(secret, BigInt(epoch)).toString()
  const claim = (to: string) => fetch(`${base}/v1/zk/claims`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ proof, recipient: to, epoch, root: leaves.root, nullifierHash: nullifier }),
  })
  const accepted = await claim(recipient)
  assert.equal(accepted.status, 201)
  assert.equal((await accepted.json() as { balance: number }).balance, 5)
  assert.equal((await claim(recipient)).status, 409)
  assert.equal((await claim('cd'.repeat(32))).status, 409, 'a second claim in the epoch is refused whatever the recipient')
  const recorded = await (await fetch(`${base}/v1/zk/claims/${nullifier}`)).json() as { recipient: string }
  assert.equal(recorded.recipient, recipient, 'the record names the recipient, never the device')
  assert.equal(JSON.stringify(recorded).includes(device.id), false)
  const balance = await (await fetch(`${base}/v1/zk/balances/${recipient}`)).json() as { balance: number }
  assert.equal(balance.balance, 5)
})

test('a TokenClaim over MQTT is answered in its Ack; a second one is refused with double_claim (107)', async t => {
  t.after(() => (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate())
  const hub = await startTestHub(t, { zk: { reward: 3 } })
  const base = `http://127.0.0.1:${hub.httpPort}`
  const device = await connectTestDevice(t, hub)
  const secret = 0xbeefn
  const commitment = identityLeaf(secret).toString()
  const body = JSON.stringify({ commitment })
  const added = await fetch(`${base}/v1/zk/commitments`, {
    method: 'POST',
    headers: { ...signHttpRequest(device.principal.id, device.principal.sign, { method: 'POST', target: '/v1/zk/commitments', body }), 'content-type': 'application/json' },
    body,
  })
  assert.equal(added.status, 201)
  const tree = new SparseMerkleTree()
  tree.set(0, BigInt(commitment))
  const { epoch } = await (await fetch(`${base}/v1/zk/epoch`)).json() as { epoch: number }
  const recipient = 'ef'.repeat(32)
  const input = claimCircuitInput({ secret, proof: tree.proof(0), root: tree.root, claim: { recipient, amount: 3n, epoch: BigInt(epoch) } })
  const { proof, publicSignals } = await snarkjs.groth16.fullProve(input, circuitArtifact('claim.wasm'), circuitArtifact('claim_final.zkey'))
  const claim = { circuit: 'claim', proof, publicSignals, recipient }
  await device.up(device.envelope({ type: 61, body: claim, ack: true }))
  await device.up(device.envelope({ type: 61, body: claim, ack: true }))
  const [first, second] = await device.ackBodies(2)
  assert.equal(first.ok, true)
  assert.equal((first.result as { balance: number }).balance, 3)
  assert.deepEqual([second.ok, second.code, second.reason], [false, 107, 'double_claim'])
})
