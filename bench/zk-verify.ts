// Groth16 verification throughput of the claim circuit: snarkjs.groth16.verify sequentially
// in this thread vs the worker pool (src/zklock/verifier-pool.ts) on every core; plus proof
// generation time, cold and warm. Run: node --import tsx bench/zk-verify.ts [count]

import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as snarkjs from 'snarkjs'
import { SparseMerkleTree, claimCircuitInput, identityLeaf } from '../circuits/claim-inputs.js'
import { createVerifierPool } from '../src/zklock/verifier-pool.js'

const BUILD = join(dirname(fileURLToPath(import.meta.url)), '..', 'circuits', 'build')
const vkey = JSON.parse(readFileSync(join(BUILD, 'verification_key.json'), 'utf8')) as snarkjs.VerificationKey
const N = Number(process.argv[2] ?? 200)

const secret = 0xdeadbeefcafen
const tree = new SparseMerkleTree()
tree.set(777, identityLeaf(secret))
const prove = (amount: bigint) =>
  snarkjs.groth16.fullProve(
    claimCircuitInput({ secret, proof: tree.proof(777), root: tree.root, claim: { recipient: 'a1'.repeat(32), amount, epoch: 7n } }),
    join(BUILD, 'claim.wasm'),
    join(BUILD, 'claim_final.zkey'),
  )

let t0 = performance.now()
const { proof, publicSignals } = await prove(1n)
const cold = performance.now() - t0
const warm: number[] = []
for (let i = 0; i < 3; i++) {
  t0 = performance.now()
  await prove(BigInt(i + 2))
  warm.push(performance.now() - t0)
}

// Sequential, main thread (the curve is built by the first call; warm it up first).
for (let i = 0; i < 5; i++) await snarkjs.groth16.verify(vkey, publicSignals, proof)
t0 = performance.now()
for (let i = 0; i < N; i++) if (!(await snarkjs.groth16.verify(vkey, publicSignals, proof))) throw new Error('verify failed')
const seqMs = performance.now() - t0
await (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate()

const size = availableParallelism()
const pool = createVerifierPool({ verificationKey: vkey, size, queueMax: N })
await Promise.all(Array.from({ length: size * 2 }, () => pool.verify(proof, publicSignals))) // start + warm
t0 = performance.now()
const results = await Promise.all(Array.from({ length: N }, () => pool.verify(proof, publicSignals)))
const poolMs = performance.now() - t0
await pool.close()
if (!results.every(Boolean)) throw new Error('pool verify failed')

const seqRate = (N * 1000) / seqMs
const poolRate = (N * 1000) / poolMs
const median = [...warm].sort((a, b) => a - b)[1]
console.log(`zk-verify: ${N} verifications each, node ${process.version}, ${size} cores`)
console.log(`  proof generation: cold ${cold.toFixed(0)} ms, warm ${median.toFixed(0)} ms (median of 3: ${warm.map(w => w.toFixed(0)).join(', ')})`)
console.log(`  sequential, main thread: ${seqRate.toFixed(1)} verif/s (${(seqMs / N).toFixed(2)} ms each)`)
console.log(`  pool, ${size} workers:      ${poolRate.toFixed(1)} verif/s`)
console.log(`  ratio pool / sequential: ${(poolRate / seqRate).toFixed(2)}x`)
