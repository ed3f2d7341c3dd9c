// The claim circuit (circuits/claim.circom) with the committed development keys: real Groth16
// proofs over a depth-20 Poseidon tree built here with poseidon-lite.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { poseidon2 } from 'poseidon-lite'
import * as snarkjs from 'snarkjs'
import {
  FIELD_P,
  TREE_DEPTH,
  PUBLIC_SIGNALS,
  SparseMerkleTree,
  claimCircuitInput,
  claimSignalHash,
  identityLeaf,
  nullifierHash,
  publicSignalsArray,
  recipientToField,
  rootFromProof,
  zeroHashes,
  type ClaimContent,
} from '../../circuits/claim-inputs.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BUILD = join(ROOT, 'circuits', 'build')
const WASM = join(BUILD, 'claim.wasm')
const ZKEY = join(BUILD, 'claim_final.zkey')
const vkey = JSON.parse(readFileSync(join(BUILD, 'verification_key.json'), 'utf8')) as snarkjs.VerificationKey

const RECIPIENT = 'a1'.repeat(16) + '0f'.repeat(16)
const OTHER_RECIPIENT = 'a1'.repeat(16) + '0e'.repeat(16)

// Members of "our" tree: [index, secret]. Index 2^20 - 1 has every path bit set.
const members: [number, bigint][] = [
  [0, 0x1234567890abcdefn],
  [1, 42n],
  [2, FIELD_P - 1n],
  [777, 0xdeadbeefcafen],
  [2 ** TREE_DEPTH - 1, 0xc0ffeen],
]

let tree: SparseMerkleTree

async function prove(secret: bigint, index: number, t: SparseMerkleTree, claim: ClaimContent, root = t.root) {
  const input = claimCircuitInput({ secret, proof: t.proof(index), root, claim })
  return snarkjs.groth16.fullProve(input, WASM, ZKEY)
}

/** What the hub does: rebuild the public signals from its own state and the claim, then verify. */
function hubVerify(proof: snarkjs.Groth16Proof, hubRoot: bigint, claimedNullifier: bigint, claim: ClaimContent) {
  const signals = publicSignalsArray({ root: hubRoot, nullifierHash: claimedNullifier, signalHash: claimSignalHash(claim), epoch: claim.epoch })
  return snarkjs.groth16.verify(vkey, signals, proof)
}

before(() => {
  tree = new SparseMerkleTree()
  for (const [i, s] of members) tree.set(i, identityLeaf(s))
})

after(async () => {
  // ffjavascript keeps worker threads alive through globalThis.curve_bn128.
  await (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate()
})

describe('claim inputs (off-circuit)', () => {
  test('the zero values are the Poseidon chain from 0', () => {
    const z = zeroHashes()
    assert.equal(z.length, TREE_DEPTH + 1)
    assert.equal(z[0], 0n)
    assert.equal(z[1], poseidon2([0n, 0n]))
    assert.equal(z[1], 14744269619966411208579211824598458697587494354926760081771325075741142829156n)
    assert.equal(new SparseMerkleTree().root, z[TREE_DEPTH])
  })

  test('the test vector of docs/zklock.md', () => {
    const secret = 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fn
    const recipient = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c'
    assert.deepEqual(recipientToField(recipient), [81415696758620840428777050208074432188n, 208149705305670341962582868553935119884n])
    assert.equal(identityLeaf(secret), 20410061188167323713584471433772953049260119117050592850297585063839176262645n)
    assert.equal(nullifierHash(secret, 1n), 1986133122536360908980538544746114927353360918693031727743799134464042940100n)
    assert.equal(claimSignalHash({ recipient, amount: 1000n, epoch: 1n }), 11215354020296761906586940288752628004907458773202508388448270541521994938732n)
    assert.equal(zeroHashes()[TREE_DEPTH], 15019797232609675441998260052101280400536945603062888308240081994073687793470n)
    const t = new SparseMerkleTree()
    t.set(0, identityLeaf(secret))
    assert.equal(t.root, 7839674110436689689456634233868503418389535017943258567074167014661819163291n)
  })

  test('the sparse tree agrees with the path recomputation', () => {
    for (const [i, s] of members) assert.equal(rootFromProof(identityLeaf(s), tree.proof(i)), tree.root)
    assert.deepEqual(tree.proof(777).pathIndices.slice(0, 10), [1, 0, 0, 1, 0, 0, 0, 0, 1, 1])
  })

  test('the recipient key maps to two 128-bit big-endian limbs', () => {
    const [hi, lo] = recipientToField(RECIPIENT)
    assert.equal(hi, BigInt('0x' + 'a1'.repeat(16)))
    assert.equal(lo, BigInt('0x' + '0f'.repeat(16)))
    assert.deepEqual(recipientToField(RECIPIENT.toUpperCase()), [hi, lo])
    assert.throws(() => recipientToField('ab'), TypeError)
    assert.throws(() => recipientToField('g'.repeat(64)), TypeError)
    assert.throws(() => claimSignalHash({ recipient: RECIPIENT, amount: 1n << 64n, epoch: 1n }), RangeError)
    assert.throws(() => claimSignalHash({ recipient: RECIPIENT, amount: -1n, epoch: 1n }), RangeError)
    assert.notEqual(claimSignalHash({ recipient: RECIPIENT, amount: 5n, epoch: 1n }), claimSignalHash({ recipient: OTHER_RECIPIENT, amount: 5n, epoch: 1n }))
  })
})

describe('claim circuit (Groth16, development keys)', () => {
  const claim: ClaimContent = { recipient: RECIPIENT, amount: 1000n, epoch: 19_999n }
  let proof: snarkjs.Groth16Proof
  let publicSignals: string[]
  const [index, secret] = members[3]

  before(async () => {
    const t0 = performance.now()
    ;({ proof, publicSignals } = await prove(secret, index, tree, claim))
    console.log(`# zk: first proof (cold: wasm + zkey load, worker start) ${(performance.now() - t0).toFixed(0)} ms`)
  })

  test('the verification key has the four public signals', () => {
    assert.equal(vkey.protocol, 'groth16')
    assert.equal(vkey.curve, 'bn128')
    assert.equal(vkey.nPublic, PUBLIC_SIGNALS.length)
  })

  test('a member proves a claim and the hub verifies it from its own public signals', async () => {
    const nf = nullifierHash(secret, claim.epoch)
    assert.deepEqual(publicSignals, publicSignalsArray({ root: tree.root, nullifierHash: nf, signalHash: claimSignalHash(claim), epoch: claim.epoch }))
    const t0 = performance.now()
    assert.equal(await hubVerify(proof, tree.root, nf, claim), true)
    console.log(`# zk: verify ${(performance.now() - t0).toFixed(0)} ms`)
  })

  test('the nullifier is Poseidon(secret, epoch), as poseidon-lite computes it', async () => {
    assert.equal(BigInt(publicSignals[1]), poseidon2([secret, claim.epoch]))
    // The circuit constrains it: any other value makes the witness unsatisfiable.
    const input = claimCircuitInput({ secret, proof: tree.proof(index), root: tree.root, claim })
    input.nullifierHash = poseidon2([secret, claim.epoch + 1n]).toString()
    await assert.rejects(snarkjs.groth16.fullProve(input, WASM, ZKEY), /Assert Failed/)
    // A new epoch gives a new, unlinkable nullifier.
    assert.notEqual(nullifierHash(secret, claim.epoch + 1n), BigInt(publicSignals[1]))
  })

  test('the proof is bound to the recipient, the amount and the epoch', async () => {
    const nf = nullifierHash(secret, claim.epoch)
    assert.equal(await hubVerify(proof, tree.root, nf, { ...claim, recipient: OTHER_RECIPIENT }), false)
    assert.equal(await hubVerify(proof, tree.root, nf, { ...claim, amount: claim.amount + 1n }), false)
    assert.equal(await hubVerify(proof, tree.root, nf, { ...claim, epoch: claim.epoch + 1n }), false)
    // Same claim, the nullifier of another epoch or identity.
    assert.equal(await hubVerify(proof, tree.root, nullifierHash(secret, claim.epoch + 1n), claim), false)
    assert.equal(await hubVerify(proof, tree.root, nullifierHash(42n, claim.epoch), claim), false)
  })

  test('every tampered public signal fails verification', async () => {
    for (let i = 0; i < publicSignals.length; i++) {
      const tampered = [...publicSignals]
      tampered[i] = ((BigInt(tampered[i]) + 1n) % FIELD_P).toString()
      assert.equal(await snarkjs.groth16.verify(vkey, tampered, proof), false, `signal ${PUBLIC_SIGNALS[i]}`)
    }
    // An alias of a signal modulo p (a second nullifier for the same claim) is refused too:
    // snarkjs >= 0.7 rejects public signals outside [0, p).
    const alias = [...publicSignals]
    alias[1] = (BigInt(alias[1]) + FIELD_P).toString()
    assert.equal(await snarkjs.groth16.verify(vkey, alias, proof), false)
    // And a tampered proof.
    const bad = structuredClone(proof)
    bad.pi_c = [...proof.pi_a]
    assert.equal(await snarkjs.groth16.verify(vkey, publicSignals, bad), false)
  })

  test('a proof for a foreign tree fails against our root', async () => {
    // The same identity also enrolled in someone else's tree (different members).
    const foreign = new SparseMerkleTree()
    foreign.set(5, identityLeaf(secret))
    foreign.set(6, identityLeaf(0xbadn))
    assert.notEqual(foreign.root, tree.root)
    const { proof: fp, publicSignals: fs } = await prove(secret, 5, foreign, claim)
    // Valid for the foreign root it carries ...
    assert.equal(fs[0], foreign.root.toString())
    assert.equal(await snarkjs.groth16.verify(vkey, fs, fp), true)
    // ... but the hub puts its own root in the public signals: refused.
    assert.equal(await hubVerify(fp, tree.root, nullifierHash(secret, claim.epoch), claim), false)
    // A foreign member cannot claim our root either: root === computed root fails.
    await assert.rejects(prove(0xbadn, 6, foreign, claim, tree.root), /Assert Failed/)
  })

  test('a non-member cannot produce a proof', async () => {
    const outsider = 0x5eeeeeeeen
    // With a member's path (the leaf differs, so the root does).
    await assert.rejects(prove(outsider, index, tree, claim), /Assert Failed/)
    // With the empty leaf's path at a free index.
    await assert.rejects(prove(outsider, 3, tree, claim), /Assert Failed/)
    // A member's secret at the wrong index.
    await assert.rejects(prove(secret, 778, tree, claim), /Assert Failed/)
    // Path indices must be bits.
    const input = claimCircuitInput({ secret, proof: tree.proof(index), root: tree.root, claim })
    ;(input.pathIndices as string[])[0] = '2'
    await assert.rejects(snarkjs.groth16.fullProve(input, WASM, ZKEY), /Assert Failed/)
  })

  test("members at the tree's edges prove (warm prover)", async () => {
    for (const [i, s] of [members[0], members[2], members[4]]) {
      const c = { ...claim, amount: BigInt(i) }
      const t0 = performance.now()
      const { proof: p } = await prove(s, i, tree, c)
      console.log(`# zk: proof (warm), leaf ${i}: ${(performance.now() - t0).toFixed(0)} ms`)
      assert.equal(await hubVerify(p, tree.root, nullifierHash(s, c.epoch), c), true)
    }
  })
})

describe('committed artifacts', () => {
  test('recompiling the circuit gives the committed r1cs and wasm (npm run circuits:check)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'circuits', 'build.ts'), 'check'], { cwd: ROOT, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /circuits: OK/)
  })

  test(
    'the zkey is a setup of the r1cs (snarkjs zkey verify; set ZK_VERIFY_SETUP=1, takes minutes)',
    { skip: process.env.ZK_VERIFY_SETUP !== '1' && 'set ZK_VERIFY_SETUP=1' },
    () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'circuits', 'build.ts'), 'verify-setup'], { cwd: ROOT, encoding: 'utf8' })
      assert.equal(r.status, 0, r.stdout + r.stderr)
      assert.match(r.stdout, /zkey verify: OK/)
    },
  )
})
