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
import { connectTestDevice, connectTestService } from '../helpers/device.js'
import { decodeBridgeRecord, signHttpRequest } from '../../src/protocol/index.js'
import { readFileSync } from 'node:fs'

test('a device claims anonymously once per epoch; the hub records it and credits the recipient', async t => {
  t.after(() => (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate())
  const hub = await startTestHub(t, { zk: { reward: 5 } })
  const service = await connectTestService(t, hub)
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

  // Services get the accepted claim, from the hub, with the proof to check it themselves.
  const [record] = await service.decoded(1)
  assert.equal(service.records.messages[0].topic, `mn/v1/bridge/token_claim/${hub.nodeId}`)
  assert.equal(record.src, hub.nodeId)
  const body = record.body as Record<string, unknown>
  assert.deepEqual([body.nullifier, body.recipient, body.amount, body.epoch, body.root], [nullifier, recipient, 5, epoch, leaves.root])
  assert.ok(await snarkjs.groth16.verify(verificationKey(), body.publicSignals as string[], body.proof as snarkjs.Groth16Proof))
  assert.equal(Buffer.from(service.records.messages[0].payload).includes(device.id), false)
})

function verificationKey (): snarkjs.VerificationKey {
  return JSON.parse(readFileSync(circuitArtifact('verification_key.json'), 'utf8')) as snarkjs.VerificationKey
}

test('a TokenClaim over MQTT is answered in its Ack; a second one is refused with double_claim (107); the claim is bridged without the device', async t => {
  t.after(() => (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate())
  const hub = await startTestHub(t, { zk: { reward: 3 } })
  const base = `http://127.0.0.1:${hub.httpPort}`
  const device = await connectTestDevice(t, hub)
  const service = await connectTestService(t, hub)
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
  // One record for the one accepted claim, on the hub's topic: the envelope naming the
  // device is never bridged, nor is the refused claim.
  await device.up(device.envelope({ type: 1, body: { marker: 1 }, ack: true }))
  await device.ackBodies(3)
  const records = await service.records.waitFor(2)
  assert.deepEqual(records.map(r => r.topic), [`mn/v1/bridge/token_claim/${hub.nodeId}`, `mn/v1/bridge/status_update/${device.principal.id}`])
  assert.equal(records[0].payload.includes(device.principal.id), false)

  // ProofSubmission (60): the same proof as an identified statement, verified and bridged
  // with the device's id once it holds; refused ones are answered and not bridged.
  const statement = { circuit: 'claim', proof, publicSignals }
  const tampered = { ...statement, publicSignals: [publicSignals[0], publicSignals[1], '12345', publicSignals[3]] }
  await device.up(device.signed({ type: 60, body: statement, ack: true }))
  await device.up(device.signed({ type: 60, body: tampered, ack: true }))
  await device.up(device.signed({ type: 60, body: { ...statement, circuit: 'other' }, ack: true }))
  await device.up(device.signed({ type: 60, body: { ...statement, publicSignals: ['1', ...publicSignals.slice(1)] }, ack: true }))
  await device.up(device.envelope({ type: 60, body: statement, ack: true }))
  const acks = (await device.ackBodies(8)).slice(3)
  assert.deepEqual(acks.map(a => [a.ok, a.code, a.reason]), [
    [true, 0, ''], [false, 104, 'bad_proof'], [false, 109, 'unknown_circuit'], [false, 105, 'unknown_root'], [false, 8, 'unsigned'],
  ])
  assert.deepEqual((acks[0].result as { publicSignals: string[] }).publicSignals, publicSignals)
  await device.up(device.envelope({ type: 1, body: { marker: 2 }, ack: true }))
  await device.ackBodies(9)
  const all = await service.records.waitFor(4)
  assert.deepEqual(all.slice(2).map(r => r.topic), [`mn/v1/bridge/proof_submission/${device.principal.id}`, `mn/v1/bridge/status_update/${device.principal.id}`])
  const proofRecord = decodeBridgeRecord(all[2].payload)
  assert.equal(proofRecord.signed, true)
  assert.deepEqual((proofRecord.body as { publicSignals: string[] }).publicSignals, publicSignals)
})
