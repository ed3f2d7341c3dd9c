// ZK claims (src/zklock/claims.ts): one real proof of the claim circuit, made once, checked by
// the real verifier pool against a real identity tree, on both engines (an SQLite file and a
// PostgreSQL server).

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { after, before, describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import * as snarkjs from 'snarkjs'
import { SparseMerkleTree, claimCircuitInput, identityLeaf } from '../../circuits/claim-inputs.js'
import type { SqlDatabase } from '../../src/store/sql.js'
import { TreeStore } from '../../src/zklock/tree-store.js'
import { createVerifierPool } from '../../src/zklock/verifier-pool.js'
import { ClaimError, createClaimService, type ClaimRequest, type ClaimService } from '../../src/zklock/claims.js'
import { claimRoutes } from '../../src/zklock/claim-routes.js'
import { sharedDatabase, sqlEngines, type SqlEngine } from '../helpers/sql-engines.js'
import { addPrincipal } from './sql-helpers.js'

const BUILD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'circuits', 'build')
const vkey = JSON.parse(readFileSync(join(BUILD, 'verification_key.json'), 'utf8')) as snarkjs.VerificationKey

const DAY = 86_400_000
const EPOCH = 20_000
const NOW = EPOCH * DAY + 12_345
const REWARD = 1000
const SECRET = 0x5eed5eedn
const RECIPIENT = 'a1'.repeat(32)
const OTHER = 'b2'.repeat(32)

let proof: snarkjs.Groth16Proof
let publicSignals: string[]
let root: string

before(async () => {
  const tree = new SparseMerkleTree()
  tree.set(0, identityLeaf(SECRET))
  root = tree.root.toString()
  const input = claimCircuitInput({ secret: SECRET, proof: tree.proof(0), root: tree.root, claim: { recipient: RECIPIENT, amount: BigInt(REWARD), epoch: BigInt(EPOCH) } })
  ;({ proof, publicSignals } = await snarkjs.groth16.fullProve(input, join(BUILD, 'claim.wasm'), join(BUILD, 'claim_final.zkey')))
  await (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate()
})

const pool = createVerifierPool({ verificationKey: vkey, size: 2, queueMax: 64 })
after(() => pool.close())

/** A claim service over `db` (its own tree), once the identity the proof is for is in the tree. */
async function serviceOn (db: SqlDatabase, nowMs = NOW): Promise<ClaimService> {
  const tree = await TreeStore.open(db)
  if (await tree.leafCount() === 0) await tree.addCommitment(await addPrincipal(db), identityLeaf(SECRET))
  assert.equal(await tree.currentRoot(), root)
  return createClaimService({ db, tree, verifier: pool, epochs: { lengthMs: DAY, reward: REWARD }, nowMs: () => nowMs })
}

async function service (engine: SqlEngine, t: TestContext, nowMs = NOW): Promise<ClaimService> {
  return serviceOn(await engine.open(t), nowMs)
}

const request = (over: Partial<ClaimRequest> = {}): ClaimRequest =>
  ({ proof, recipient: RECIPIENT, epoch: EPOCH, root, nullifierHash: publicSignals[1], ...over })

async function refused (p: Promise<unknown>, reason: string, status: number, reasonCode: number): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e)
  assert.ok(err instanceof ClaimError, String(err))
  assert.equal(err.reason, reason)
  assert.equal(err.statusCode, status)
  assert.equal(err.reasonCode, reasonCode)
}

for (const engine of sqlEngines()) {
  describe(`ZK claims on ${engine.name}`, { skip: engine.skip }, () => {
    test('a valid claim is accepted and credits the recipient', async t => {
      const claims = await service(engine, t)
      assert.equal(await claims.balance(RECIPIENT), 0)
      const result = await claims.claim(request({ recipient: RECIPIENT.toUpperCase() }))
      assert.deepEqual(result, { nullifier: publicSignals[1], recipient: RECIPIENT, amount: REWARD, epoch: EPOCH, balance: REWARD })
      assert.equal(await claims.balance(RECIPIENT), REWARD)
      assert.deepEqual(await claims.getClaim(publicSignals[1]), { nullifier: publicSignals[1], epoch: EPOCH, recipient: RECIPIENT, amount: REWARD, root, claimed: NOW })
      assert.equal((await claims.getClaim('0' + publicSignals[1]))?.nullifier, publicSignals[1])
      assert.equal(await claims.getClaim('123'), undefined)
      // The same nullifier again: refused, even for another recipient.
      await refused(claims.claim(request()), 'double_claim', 409, 107)
      await refused(claims.claim(request({ recipient: OTHER })), 'double_claim', 409, 107)
      assert.equal(await claims.balance(RECIPIENT), REWARD)
      assert.equal(await claims.balance(OTHER), 0)
    })

    test('another recipient than the one the proof binds: bad_proof', async t => {
      const claims = await service(engine, t)
      await refused(claims.claim(request({ recipient: OTHER })), 'bad_proof', 400, 104)
      const swapped = structuredClone(proof)
      swapped.pi_c = [...proof.pi_a]
      await refused(claims.claim(request({ proof: swapped })), 'bad_proof', 400, 104)
      await refused(claims.claim(request({ proof: { nope: 1 } })), 'bad_proof', 400, 104)
      assert.equal(await claims.getClaim(publicSignals[1]), undefined)
      // Nothing was recorded: the right claim still goes through.
      assert.equal((await claims.claim(request())).balance, REWARD)
    })

    test('unknown root, stale epoch, malformed fields', async t => {
      const claims = await service(engine, t)
      await refused(claims.claim(request({ root: '12345' })), 'unknown_root', 400, 105)
      await refused(claims.claim(request({ epoch: EPOCH - 1 })), 'stale_epoch', 400, 106)
      await refused(claims.claim(request({ epoch: EPOCH + 1 })), 'stale_epoch', 400, 106)
      await assert.rejects(claims.claim(request({ recipient: 'xyz' })), { code: 'MN_ERR_BAD_REQUEST' })
      await assert.rejects(claims.claim(request({ nullifierHash: '-1' })), { code: 'MN_ERR_BAD_REQUEST' })
      // The proof's epoch, a day later, is stale.
      const later = await service(engine, t, NOW + DAY)
      await refused(later.claim(request()), 'stale_epoch', 400, 106)
    })

    test('two concurrent claims with one nullifier: exactly one is accepted', async t => {
      const claims = await service(engine, t)
      const results = await Promise.allSettled([claims.claim(request()), claims.claim(request()), claims.claim(request())])
      assert.equal(results.filter(r => r.status === 'fulfilled').length, 1)
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as ClaimError).reason, 'double_claim')
      }
      assert.equal(await claims.balance(RECIPIENT), REWARD)
    })

    test('routes', async t => {
      const claims = await service(engine, t)
      const app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } } })
      t.after(() => app.close())
      await app.register(claimRoutes, { claims })
      const epoch = await app.inject({ method: 'GET', url: '/v1/zk/epoch' })
      assert.deepEqual(epoch.json(), { epoch: EPOCH, reward: REWARD, lengthMs: DAY, startsMs: EPOCH * DAY, endsMs: (EPOCH + 1) * DAY })
      assert.equal((await app.inject({ method: 'GET', url: `/v1/zk/claims/${publicSignals[1]}` })).statusCode, 404)
      const body = { proof, publicSignals, recipient: RECIPIENT, epoch: EPOCH, root, nullifierHash: publicSignals[1] }
      assert.equal((await app.inject({ method: 'POST', url: '/v1/zk/claims', payload: { ...body, extra: 1 } })).statusCode, 400)
      const ok = await app.inject({ method: 'POST', url: '/v1/zk/claims', payload: body })
      assert.equal(ok.statusCode, 201, ok.body)
      assert.equal(ok.json().balance, REWARD)
      const again = await app.inject({ method: 'POST', url: '/v1/zk/claims', payload: body })
      assert.equal(again.statusCode, 409)
      assert.equal((await app.inject({ method: 'GET', url: `/v1/zk/claims/${publicSignals[1]}` })).json().recipient, RECIPIENT)
      assert.deepEqual((await app.inject({ method: 'GET', url: `/v1/zk/balances/${RECIPIENT}` })).json(), { recipient: RECIPIENT, balance: REWARD })
    })

    test('one nullifier claimed through two connections at once: exactly one is accepted', async t => {
      // Two services on two connections to one database, as two hub processes sharing it run:
      // both pass the cheap checks, both proofs verify, and the nullifier's primary key
      // decides. (On SQLite the two connections are two processes' in practice: one process
      // holding two would block on the file's write lock; there the race is on one connection.)
      const { connect } = await sharedDatabase(engine, t)
      const dbA = await connect()
      const a = await serviceOn(dbA)
      const b = engine.name === 'postgres' ? await serviceOn(await connect()) : a
      const results = await Promise.allSettled([a.claim(request()), b.claim(request()), a.claim(request({ recipient: OTHER })), b.claim(request())])
      const accepted = results.filter(r => r.status === 'fulfilled')
      assert.equal(accepted.length, 1, JSON.stringify(results.map(r => r.status === 'rejected' ? String(r.reason) : 'accepted')))
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof ClaimError && ['double_claim', 'bad_proof'].includes(r.reason.reason), String(r.reason))
      }
      // The claim for OTHER does not verify (the proof binds RECIPIENT): it is never the one accepted.
      assert.equal(await a.balance(RECIPIENT), REWARD)
      assert.equal(await b.balance(RECIPIENT), REWARD)
      assert.equal(await b.balance(OTHER), 0)
      assert.deepEqual(await dbA.get('SELECT count(*) AS n FROM zk_claims'), { n: 1 })
    })
  })
}
