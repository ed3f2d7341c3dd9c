// The Groth16 verifier pool (src/zklock/verifier-pool.ts): one real proof of the claim
// circuit, made once here, verified in worker threads.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import * as snarkjs from 'snarkjs'
import { FIELD_P, SparseMerkleTree, claimCircuitInput, identityLeaf } from '../../circuits/claim-inputs.js'
import { QueueFullError, VerifierClosedError, VerifierCrashedError, createVerifierPool, isWellFormedRequest, kWorkers } from '../../src/zklock/verifier-pool.js'

const BUILD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'circuits', 'build')
const vkey = JSON.parse(readFileSync(join(BUILD, 'verification_key.json'), 'utf8')) as snarkjs.VerificationKey

let proof: snarkjs.Groth16Proof
let publicSignals: string[]

before(async () => {
  const secret = 0xdeadbeefcafen
  const tree = new SparseMerkleTree()
  tree.set(777, identityLeaf(secret))
  const input = claimCircuitInput({ secret, proof: tree.proof(777), root: tree.root, claim: { recipient: 'a1'.repeat(32), amount: 1000n, epoch: 7n } })
  ;({ proof, publicSignals } = await snarkjs.groth16.fullProve(input, join(BUILD, 'claim.wasm'), join(BUILD, 'claim_final.zkey')))
  // The prover's curve (main thread) keeps threads alive otherwise.
  await (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate()
})

describe('verifier pool', () => {
  const pool = createVerifierPool({ verificationKey: vkey, size: 2, queueMax: 64 })
  after(() => pool.close())

  test('a valid proof verifies', async () => {
    assert.equal(await pool.verify(proof, publicSignals), true)
    // Concurrently, on both workers, the curve reused.
    const many = await Promise.all(Array.from({ length: 8 }, () => pool.verify(proof, publicSignals)))
    assert.deepEqual(many, Array(8).fill(true))
    assert.equal(pool.pending, 0)
  })

  test('a tampered public signal fails', async () => {
    for (let i = 0; i < publicSignals.length; i++) {
      const tampered = [...publicSignals]
      tampered[i] = ((BigInt(tampered[i]) + 1n) % FIELD_P).toString()
      assert.equal(await pool.verify(proof, tampered), false, `signal ${i}`)
    }
    // Out of the field (an alias mod p) and not a number.
    assert.equal(await pool.verify(proof, [publicSignals[0], (BigInt(publicSignals[1]) + FIELD_P).toString(), publicSignals[2], publicSignals[3]]), false)
    assert.equal(await pool.verify(proof, [...publicSignals.slice(0, 3), 'x']), false)
    assert.equal(await pool.verify(proof, publicSignals.slice(0, 3)), false)
  })

  test('a tampered or malformed proof resolves false and the workers survive', async () => {
    const swapped = structuredClone(proof)
    swapped.pi_c = [...proof.pi_a]
    assert.equal(await pool.verify(swapped, publicSignals), false)
    // A point off the curve (passes the shape check, reaches a worker).
    const offCurve = structuredClone(proof)
    offCurve.pi_a = ['1', '3', '1']
    assert.equal(await pool.verify(offCurve, publicSignals), false)
    const malformed: unknown[] = [
      null,
      42,
      'proof',
      {},
      { pi_a: proof.pi_a, pi_b: proof.pi_b },
      { ...proof, pi_a: [1, 2, 1] },
      { ...proof, pi_b: [['1'], ['2'], ['3']] },
      { ...proof, pi_c: ['-1', '2', '1'] },
      { ...proof, pi_a: [proof.pi_a[0], (BigInt(proof.pi_a[1]) + FIELD_P * 2n).toString(), '1'] },
      { ...proof, curve: 'bls12381' },
      { ...proof, extra: () => 1 },
    ]
    for (const m of malformed) assert.equal(await pool.verify(m, publicSignals), false, JSON.stringify(m) ?? String(m))
    assert.equal(await pool.verify(proof, null as unknown as string[]), false)
    // Still alive and correct.
    assert.equal(await pool.verify(proof, publicSignals), true)
  })

  test('the shape check', () => {
    assert.equal(isWellFormedRequest(proof, publicSignals, 4), true)
    assert.equal(isWellFormedRequest(proof, publicSignals, 3), false)
  })

  test('a crashed worker is replaced', async () => {
    const p = createVerifierPool({ verificationKey: vkey, size: 1 })
    const workers = () => p[kWorkers]!()
    try {
      assert.equal(await p.verify(proof, publicSignals), true)
      const [first] = workers()
      const running = p.verify(proof, publicSignals)
      await first.terminate() // as if it had crashed mid-flight
      await running.then(
        ok => assert.equal(ok, true), // it finished before the kill
        (err: unknown) => assert.ok(err instanceof VerifierCrashedError, String(err)),
      )
      assert.equal(await p.verify(proof, publicSignals), true)
      assert.equal(workers().length, 1)
      assert.notEqual(workers()[0], first)
    } finally {
      await p.close()
    }
  })
})

describe('verifier pool: bounds and close', () => {
  test('past queueMax, verify rejects at once with QueueFullError', async () => {
    const pool = createVerifierPool({ verificationKey: vkey, size: 1, queueMax: 3 })
    try {
      assert.equal(await pool.verify(proof, publicSignals), true) // the worker is up
      const accepted = Array.from({ length: 4 }, () => pool.verify(proof, publicSignals)) // 1 running + 3 waiting
      assert.equal(pool.pending, 4)
      const t0 = performance.now()
      const err = await pool.verify(proof, publicSignals).then(() => null, (e: unknown) => e)
      assert.ok(err instanceof QueueFullError, String(err))
      assert.equal(err.code, 'ZK_QUEUE_FULL')
      assert.ok(err.retryAfterSeconds >= 1)
      assert.ok(performance.now() - t0 < 50)
      assert.deepEqual(await Promise.all(accepted), [true, true, true, true])
      assert.equal(pool.pending, 0)
      // Room again.
      assert.equal(await pool.verify(proof, publicSignals), true)
    } finally {
      await pool.close()
    }
  })

  test('close() rejects queued and running work, is idempotent, and verify rejects afterwards', async () => {
    const pool = createVerifierPool({ verificationKey: vkey, size: 1, queueMax: 10 })
    const inflight = Array.from({ length: 5 }, () => pool.verify(proof, publicSignals))
    const settled = Promise.allSettled(inflight)
    const c1 = pool.close()
    const c2 = pool.close()
    await Promise.all([c1, c2])
    for (const r of await settled) {
      assert.equal(r.status, 'rejected')
      assert.ok(r.reason instanceof VerifierClosedError)
    }
    assert.equal(pool.pending, 0)
    await assert.rejects(pool.verify(proof, publicSignals), VerifierClosedError)
    await pool.close()
  })
})
