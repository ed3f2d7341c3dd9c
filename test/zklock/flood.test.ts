/**
 * A proof flood over HTTP (docs/zklock.md §11): hundreds of invalid proofs that pass every
 * cheap check (current epoch, known root, unused nullifier, well-formed), so that each one
 * really reaches the verifier pool, sent by many concurrent lanes that ignore Retry-After,
 * while valid claims are submitted during the flood. The hub must answer every invalid proof
 * 400 bad_proof or 503 busy (with Retry-After), never anything else and never hang; keep the
 * verifications in flight within verifyQueueMax plus its workers; accept every valid claim
 * (retrying politely after a 503); and keep its heap flat from one wave to the next.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Session } from 'node:inspector/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import * as snarkjs from 'snarkjs'
import { SparseMerkleTree, claimCircuitInput, identityLeaf, nullifierHash } from '../../circuits/claim-inputs.js'
import { circuitArtifact } from '../../src/zklock/artifacts.js'
import { kWorkers, type VerifierPool } from '../../src/zklock/verifier-pool.js'
import type { Hub } from '../../src/hub.js'
import { enrollPrincipal, startTestHub } from '../helpers/hub.js'

const QUEUE_MAX = 32
const VALID = 4
const WAVES = 3
const PER_WAVE = 200
// More lanes than the queue and the workers hold together, so the queue stays full and the
// bound (not the client's concurrency) decides who waits.
const LANES = 64
// A liveness bound, not a performance figure: a valid claim takes a few tens of ms to verify,
// and the flood waves last seconds on this shared 2-core machine. 60 s only says "not starved
// forever"; the test makes no timing assertion beyond it.
const VALID_DEADLINE_MS = 60_000
const RETRIES_MAX = 60
// A hung request fails here, with its own message, rather than at the test's timeout.
const REQUEST_TIMEOUT_MS = 30_000
// Heap growth allowed from the end of wave 1 to the end of the last wave (400 invalid proofs
// later), after a full GC each time; the heap is this process's, the hub's and the flooding
// client's together. Wave 1 absorbs the one-off costs (the pool, JIT code, Fastify's and
// undici's caches, 64 keep-alive sockets). From wave 1 to wave 3 the heap moved by under 1 MB
// in runs here. Retaining something request-sized per flood request (a Fastify request and
// reply, a socket's buffers: tens of kB) would add well over 8 MB; retaining only a proof's
// strings (~2 kB each, 0.8 MB in all) would not be caught. 8 MB (20 kB a request) is the line.
const HEAP_GROWTH_MAX = 8 * 1024 * 1024

type Curve = { terminate(): Promise<void> }

interface Identity {
  secret: bigint
  index: number
}

interface ClaimBody {
  proof: snarkjs.Groth16Proof
  recipient: string
  epoch: number
  root: string
  nullifierHash: string
}

interface Answer {
  status: number
  code?: string
  retryAfter: string | null
}

async function postClaim (base: string, body: ClaimBody, stop?: AbortSignal): Promise<Answer> {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  const res = await fetch(`${base}/v1/zk/claims`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: stop ? AbortSignal.any([stop, timeout]) : timeout,
  })
  const json = await res.json() as { code?: string }
  return { status: res.status, code: json.code, retryAfter: res.headers.get('retry-after') }
}

/** A field element nobody holds the secret of: a fresh nullifier that the hub has never seen. */
function randomField (): string {
  return BigInt('0x' + randomBytes(31).toString('hex')).toString()
}

/** A full GC (without --expose-gc on the command line), then the heap in use. */
function heapAfterGc (): number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/**
 * The value of the variable `name` in one of `fn`'s closure scopes, read through the
 * inspector. The hub does not expose its verifier pool (the gauge metanode_zk_verify_pending
 * is sampled when /metrics is read, so it would miss the maximum), so this reaches it from hub.close (whose scope holds startHub's `zkVerifier`) and from the lazy
 * verifier's verify (whose scope holds `pool`). If either is renamed this fails loudly:
 * the fix is a real hook (the pool's `pending` as a metric, say), not a silent skip.
 */
async function closureVariable (session: Session, fn: (...args: never[]) => unknown, name: string): Promise<unknown> {
  const g = globalThis as Record<string, unknown>
  const slot = `__floodProbe${randomBytes(4).toString('hex')}`
  g[slot] = fn
  try {
    const { result } = await session.post('Runtime.evaluate', { expression: `globalThis.${slot}` })
    const own = await session.post('Runtime.getProperties', { objectId: result.objectId!, ownProperties: true })
    const scopes = own.internalProperties?.find(p => p.name === '[[Scopes]]')?.value?.objectId
    assert.ok(scopes, 'the function has no [[Scopes]]')
    const list = await session.post('Runtime.getProperties', { objectId: scopes, ownProperties: true })
    for (const scope of list.result) {
      if (!scope.value?.objectId) continue
      const vars = await session.post('Runtime.getProperties', { objectId: scope.value.objectId, ownProperties: true })
      const found = vars.result.find(v => v.name === name)
      if (!found?.value) continue
      if (found.value.objectId === undefined) return found.value.value
      await session.post('Runtime.callFunctionOn', { objectId: found.value.objectId, functionDeclaration: `function () { globalThis.${slot} = this }` })
      return g[slot]
    }
    throw new Error(`no variable "${name}" in the closure of ${fn.name || 'the function'}: add a hook to observe the verifier queue`)
  } finally {
    delete g[slot]
  }
}

/** The hub's verifier pool, wrapped to record the most requests ever pending at once. */
async function observePool (hub: Hub): Promise<{ pool: VerifierPool, calls: () => number, maxPending: () => number }> {
  const session = new Session()
  session.connect()
  try {
    const lazy = await closureVariable(session, hub.close, 'zkVerifier') as { verify: (...args: never[]) => unknown }
    const pool = await closureVariable(session, lazy.verify, 'pool') as VerifierPool | null
    assert.ok(pool, 'the verifier pool has not started')
    const verify = pool.verify.bind(pool)
    let calls = 0
    let maxPending = 0
    // `pending` (queued + being verified) only grows inside verify(), so reading it right
    // after each call sees every maximum.
    pool.verify = (proof, publicSignals) => {
      calls++
      const result = verify(proof, publicSignals)
      maxPending = Math.max(maxPending, pool.pending)
      return result
    }
    return { pool, calls: () => calls, maxPending: () => maxPending }
  } finally {
    session.disconnect()
  }
}

test('a proof flood: invalid proofs get 400 or 503, the queue bound holds, valid claims get through, the heap stays flat', async t => {
  t.after(() => (globalThis as { curve_bn128?: Curve }).curve_bn128?.terminate())
  // On a failure, the requests still in flight are aborted before the hub closes (after hooks
  // run in order): a keep-alive connection that was busy when the hub began closing would
  // otherwise hold its close for Fastify's 72 s keep-alive timeout.
  const stop = new AbortController()
  t.after(() => stop.abort())
  const hub = await startTestHub(t, {
    // The per-address limits lifted (this route's, the gateway's, and below the CAGE's), so
    // that the flood reaches the verification queue (every request comes from 127.0.0.1)
    // instead of being cut at 429. The epoch is 10 years long so that no epoch ends mid-test.
    zk: { verifyQueueMax: QUEUE_MAX, claimsPerMinute: 1_000_000, reward: 1, epochLengthMs: 10 * 365 * 24 * 3600 * 1000 },
    http: { rateLimitPerMinute: 1_000_000 },
  })
  const base = `http://127.0.0.1:${hub.httpPort}`
  const admin = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }
  // And the third: the HTTP CAGE's default rule limiting anonymous API calls per address.
  const unlimited = await fetch(`${base}/v1/policies/default-anonymous-api-limit`, { method: 'DELETE', headers: { authorization: admin.authorization } })
  assert.equal(unlimited.status, 200)
  const started = performance.now()
  const since = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`

  // Enrol the identities and prove for each, as an app would: from the public leaves.
  const identities: Identity[] = []
  for (let i = 0; i < VALID; i++) {
    const device = await enrollPrincipal(hub)
    const secret = BigInt('0x' + randomBytes(31).toString('hex'))
    const res = await fetch(`${base}/v1/zk/commitments`, { method: 'POST', headers: admin, body: JSON.stringify({ deviceId: device.id, commitment: identityLeaf(secret).toString() }) })
    assert.equal(res.status, 201)
    identities.push({ secret, index: (await res.json() as { index: number }).index })
  }
  const leaves = await (await fetch(`${base}/v1/zk/leaves?after=0`)).json() as { commitments: string[], root: string }
  const tree = new SparseMerkleTree()
  leaves.commitments.forEach((leaf, i) => tree.set(i, BigInt(leaf)))
  assert.equal(tree.root.toString(), leaves.root)
  const { epoch } = await (await fetch(`${base}/v1/zk/epoch`)).json() as { epoch: number }
  const recipient = 'f1'.repeat(32)
  const valid: ClaimBody[] = []
  for (const id of identities) {
    const input = claimCircuitInput({ secret: id.secret, proof: tree.proof(id.index), root: tree.root, claim: { recipient, amount: 1n, epoch: BigInt(epoch) } })
    const { proof } = await snarkjs.groth16.fullProve(input, circuitArtifact('claim.wasm'), circuitArtifact('claim_final.zkey'))
    valid.push({ proof, recipient, epoch, root: leaves.root, nullifierHash: nullifierHash(id.secret, BigInt(epoch)).toString() })
  }
  t.diagnostic(`${VALID} proofs made at ${since()}`)
  // An invalid claim: a real proof, but under a nullifier it was not made for. Every cheap
  // check passes, so only the pairing refuses it.
  const invalid = (): ClaimBody => ({ ...valid[0], nullifierHash: randomField() })

  // One invalid proof first: it starts the pool (lazily, on the first proof) and waits for
  // its workers, so that the pool can be observed before the flood.
  const first = await postClaim(base, invalid())
  assert.deepEqual([first.status, first.code], [400, 'MN_ERR_ZK_BAD_PROOF'])
  const observed = await observePool(hub)
  const workers = observed.pool[kWorkers]!().length
  const callsBefore = observed.calls()

  const tally = { 400: 0, 503: 0 }
  let flooding = false
  const acceptedDuringFlood: boolean[] = []
  const attempts: number[] = []

  async function floodWave (count: number): Promise<void> {
    let next = 0
    const lane = async (): Promise<void> => {
      // Each lane sends its next invalid proof as soon as it has an answer: no Retry-After.
      while (next < count) {
        next++
        const answer = await postClaim(base, invalid(), stop.signal)
        if (answer.status === 400) {
          assert.equal(answer.code, 'MN_ERR_ZK_BAD_PROOF')
          tally[400]++
        } else if (answer.status === 503) {
          assert.equal(answer.code, 'MN_ERR_ZK_BUSY')
          assert.match(answer.retryAfter ?? '', /^[1-9][0-9]*$/, '503 without a Retry-After in seconds')
          tally[503]++
        } else {
          assert.fail(`an invalid proof was answered ${answer.status} ${answer.code ?? ''}`)
        }
      }
    }
    flooding = true
    try {
      await Promise.all(Array.from({ length: LANES }, lane))
    } finally {
      flooding = false
    }
  }

  /** A polite client: on 503 it waits Retry-After and tries again, within the liveness bound. */
  async function claimPolitely (body: ClaimBody): Promise<void> {
    const deadline = Date.now() + VALID_DEADLINE_MS
    for (let attempt = 1; attempt <= RETRIES_MAX; attempt++) {
      const answer = await postClaim(base, body, stop.signal)
      if (answer.status === 201) {
        acceptedDuringFlood.push(flooding)
        attempts.push(attempt)
        return
      }
      assert.equal(answer.status, 503, `a valid claim was answered ${answer.status} ${answer.code ?? ''}`)
      const waitMs = Number(answer.retryAfter) * 1000
      assert.ok(Date.now() + waitMs < deadline, `a valid claim was still refused after ${attempt} attempts`)
      await new Promise(resolve => setTimeout(resolve, waitMs))
      if (stop.signal.aborted) return
    }
    assert.fail(`a valid claim was still refused after ${RETRIES_MAX} attempts`)
  }

  const heap: number[] = []
  for (let wave = 0; wave < WAVES; wave++) {
    // The valid claims of this wave go in once the flood has filled the queue.
    const mine = valid.filter((_, i) => i % WAVES === wave)
    const flood = floodWave(PER_WAVE)
    await new Promise(resolve => setTimeout(resolve, 100))
    await Promise.all([flood, ...mine.map(claimPolitely)])
    heap.push(heapAfterGc())
    t.diagnostic(`wave ${wave + 1} done at ${since()}`)
  }

  const bound = QUEUE_MAX + workers
  const invalidSent = WAVES * PER_WAVE
  t.diagnostic(`invalid proofs: ${invalidSent}, answered 400: ${tally[400]}, 503: ${tally[503]}`)
  t.diagnostic(`verifications pending at most: ${observed.maxPending()} (bound ${bound} = verifyQueueMax ${QUEUE_MAX} + ${workers} workers)`)
  t.diagnostic(`valid claims accepted: ${acceptedDuringFlood.length}, of which while a flood wave was running: ${acceptedDuringFlood.filter(Boolean).length}; attempts each: ${attempts.join(', ')}`)
  t.diagnostic(`heap after each wave (MB): ${heap.map(h => (h / 1048576).toFixed(1)).join(', ')}`)

  assert.equal(tally[400] + tally[503], invalidSent)
  assert.ok(tally[503] > 0, 'the flood never filled the queue: it did not test the bound')
  assert.ok(tally[400] > 0, 'no invalid proof was verified at all')
  assert.equal(acceptedDuringFlood.length, VALID)
  // Every claim reached the pool (the cheap checks let the invalid proofs through), and every
  // 503 came from it: one pool call per invalid proof and per attempt of a valid claim.
  assert.equal(observed.calls() - callsBefore, invalidSent + attempts.reduce((a, b) => a + b, 0))
  assert.ok(observed.maxPending() <= bound, `${observed.maxPending()} verifications pending, over the bound ${bound}`)
  assert.ok(observed.maxPending() >= QUEUE_MAX, 'the queue never filled')
  assert.ok(heap[heap.length - 1] - heap[0] < HEAP_GROWTH_MAX, `the heap grew by ${((heap[heap.length - 1] - heap[0]) / 1048576).toFixed(1)} MB over ${(WAVES - 1) * PER_WAVE} invalid proofs`)

  // The flood left nothing behind: balances credited once per valid claim.
  const balance = await (await fetch(`${base}/v1/zk/balances/${recipient}`)).json() as { balance: number }
  assert.equal(balance.balance, VALID)
  assert.equal(observed.pool.pending, 0)
  assert.match(await (await fetch(`${base}/metrics`)).text(), /^metanode_zk_verify_pending 0$/m)
})

test('without the limit lifted, the per-address claim limit answers 429 before any verification', async t => {
  const hub = await startTestHub(t, { zk: { claimsPerMinute: 2 } })
  const base = `http://127.0.0.1:${hub.httpPort}`
  // Well-formed but for a past epoch: refused by the cheap checks, never verified.
  const body = { proof: { pi_a: ['1', '2', '1'], pi_b: [['1', '2'], ['3', '4'], ['1', '0']], pi_c: ['1', '2', '1'] }, recipient: 'ab'.repeat(32), epoch: 0, root: '1', nullifierHash: '1' }
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await postClaim(base, body as unknown as ClaimBody)).status)
  assert.deepEqual(statuses, [400, 400, 429])
})
