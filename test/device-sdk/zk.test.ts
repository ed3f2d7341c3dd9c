/**
 * The SDK's ZK side against a real hub and real proofs: an identity made and stored, its
 * commitment added by the device itself, the leaves synced incrementally, and claim() as a
 * one-liner, anonymous on the wire. Three proofs in all (each about a second).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { SparseMerkleTree, identityLeaf, nullifierHash, FIELD_P } from '../../circuits/claim-inputs.js'
import { HubHttpClient, keyPairFromSecretKey, KeyError, HttpError } from '../../device-sdk/index.js'
import { FileZkIdentityStore, loadClaimArtifacts } from '../../device-sdk/node.js'
import {
  createZkIdentity, exportZkIdentity, importZkIdentity, zkIdentityFromSecret, loadOrCreateZkIdentity, MemoryZkIdentityStore,
  addZkCommitment, ZkTreeSync, ZkClaimer, closeProver, proveClaim, ZkClaimRefusedError, ZkNotInTreeError, ArgumentError,
} from '../../device-sdk/zk.js'
import { startTestHub, enrollPrincipal, tempDir } from '../helpers/hub.js'
import type { Hub } from '../../src/hub.js'

test('an identity is made, stored with mode 0600 and read back; its secret never shows', async t => {
  const identity = createZkIdentity()
  const text = exportZkIdentity(identity)
  assert.match(text, /^0x[0-9a-f]{64}$/)
  const secret = BigInt(text)
  assert.ok(secret > 0n && secret < 1n << 248n, '31 random bytes')
  assert.equal(identity.commitment, identityLeaf(secret))
  assert.equal(importZkIdentity(text).commitment, identity.commitment)
  assert.equal(importZkIdentity(secret.toString()).commitment, identity.commitment, 'decimal is accepted too')
  assert.equal(identity.nullifier(7), nullifierHash(secret, 7n))

  // Neither JSON, inspect (even with hidden properties), String nor the spread show the secret.
  for (const shown of [JSON.stringify(identity), inspect(identity), inspect(identity, { showHidden: true, depth: 9 }), String(identity), JSON.stringify({ ...identity }, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)]) {
    assert.ok(!shown.includes(secret.toString()) && !shown.includes(secret.toString(16)), `the secret shows in ${shown}`)
    assert.ok(shown.includes(identity.commitment.toString()), 'the commitment (public) is shown')
  }

  for (const bad of ['', '0', '0x0', '10x', 'ff', '0x' + 'f'.repeat(65), FIELD_P.toString(), ' 1 2 ']) {
    assert.throws(() => importZkIdentity(bad), KeyError, `accepted ${JSON.stringify(bad)}`)
  }
  assert.throws(() => zkIdentityFromSecret(0n), KeyError)

  const dir = tempDir(t, 'mn-sdk-zk-')
  const path = join(dir, 'nested', 'zk-identity')
  const store = new FileZkIdentityStore(path)
  assert.equal(await store.load(), undefined)
  const stored = await loadOrCreateZkIdentity(store)
  assert.equal(statSync(path).mode & 0o777, 0o600)
  assert.equal(readFileSync(path, 'utf8'), exportZkIdentity(stored) + '\n')
  assert.equal((await loadOrCreateZkIdentity(store)).commitment, stored.commitment, 'the second run loads it')
  writeFileSync(path, 'not a secret\n')
  await assert.rejects(loadOrCreateZkIdentity(store), KeyError, 'a damaged file is an error, never a new identity')

  const memory = new MemoryZkIdentityStore()
  const kept = await loadOrCreateZkIdentity(memory)
  assert.equal((await loadOrCreateZkIdentity(memory)).commitment, kept.commitment)
})

interface Sent { method: string, url: string, headers: Record<string, string>, body: string | undefined }

/** A fetch that records what goes out and can answer the next claims with a 503 itself. */
function recordingFetch (): { fetch: typeof fetch, sent: Sent[], busyNext: (count: number, retryAfter: string) => void } {
  const sent: Sent[] = []
  let busy = 0
  let retryAfter = '1'
  const recording: typeof fetch = async (input, init) => {
    const url = String(input)
    const headers: Record<string, string> = {}
    new Headers(init?.headers).forEach((value, name) => { headers[name] = value })
    sent.push({ method: init?.method ?? 'GET', url, headers, body: typeof init?.body === 'string' ? init.body : undefined })
    if (busy > 0 && url.endsWith('/v1/zk/claims') && init?.method === 'POST') {
      busy--
      return new Response(JSON.stringify({ statusCode: 503, code: 'MN_ERR_ZK_BUSY', error: 'Service Unavailable', message: 'busy' }), {
        status: 503, headers: { 'content-type': 'application/json', 'retry-after': retryAfter },
      })
    }
    return fetch(input, init)
  }
  return { fetch: recording, sent, busyNext: (count, after) => { busy = count; retryAfter = after } }
}

/** Adds commitments of other devices through the admin route; returns them. */
async function addOthers (hub: Hub, count: number): Promise<bigint[]> {
  const added: bigint[] = []
  for (let i = 0; i < count; i++) {
    const device = await enrollPrincipal(hub)
    const commitment = createZkIdentity().commitment
    const res = await fetch(`http://127.0.0.1:${hub.httpPort}/v1/zk/commitments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: device.id, commitment: commitment.toString() }),
    })
    assert.equal(res.status, 201)
    added.push(commitment)
  }
  return added
}

test('a device adds its commitment, syncs the leaves incrementally and claims anonymously once per epoch', async t => {
  t.after(() => closeProver())
  const hub = await startTestHub(t, { zk: { reward: 5 } })
  const baseUrl = `http://127.0.0.1:${hub.httpPort}`
  const artifacts = await loadClaimArtifacts()

  // Other devices first, so the device's leaf is not at index 0, and one after it.
  const before = await addOthers(hub, 3)
  const principal = await enrollPrincipal(hub)
  const keyPair = keyPairFromSecretKey(principal.secretKey)
  const identity = await loadOrCreateZkIdentity(new MemoryZkIdentityStore())
  const added = await addZkCommitment(new HubHttpClient({ baseUrl, keyPair }), identity)
  assert.equal(added.index, 3)
  assert.equal(added.deviceId, keyPair.id)
  assert.equal(added.commitment, identity.commitment.toString())
  await assert.rejects(addZkCommitment(new HubHttpClient({ baseUrl, keyPair }), identity), (err: unknown) => err instanceof HttpError && err.status === 409)
  const after = await addOthers(hub, 1)

  // Leaf sync, two leaves a page: the same root as the hub and as SparseMerkleTree.
  const net = recordingFetch()
  const tree = new ZkTreeSync({ baseUrl, fetch: net.fetch, pageSize: 2 })
  const first = await tree.sync()
  assert.deepEqual([first.leafCount, first.fetched, first.pages], [5, 5, 3])
  const reference = new SparseMerkleTree()
  ;[...before, identity.commitment, ...after].forEach((leaf, i) => reference.set(i, leaf))
  assert.equal(first.root, reference.root.toString())
  assert.equal(first.root, ((await (await fetch(`${baseUrl}/v1/zk/roots`)).json()) as { root: string }).root)
  assert.equal(tree.indexOf(identity.commitment), 3)
  assert.deepEqual(tree.path(identity.commitment).pathElements, reference.proof(3).pathElements)

  // More commitments: the next sync asks only for the new ones.
  const more = await addOthers(hub, 3)
  const requested = net.sent.length
  const second = await tree.sync()
  assert.deepEqual([second.leafCount, second.fetched, second.pages], [8, 3, 2])
  const leafRequests = net.sent.slice(requested).filter(s => s.url.includes('/v1/zk/leaves')).map(s => new URL(s.url).search)
  assert.deepEqual(leafRequests, ['?after=5&limit=2', '?after=7&limit=2'])
  more.forEach((leaf, i) => reference.set(5 + i, leaf))
  assert.equal(second.root, reference.root.toString())
  assert.deepEqual(tree.stats, { pages: 5, leaves: 8 })
  const quiet = await tree.sync()
  assert.deepEqual([quiet.fetched, quiet.pages], [0, 1], 'nothing new: one request, nothing downloaded')

  // The claim: the hub is busy once (the SDK waits its Retry-After and sends the same proof again).
  const claimer = new ZkClaimer({ baseUrl, identity, artifacts, tree, fetch: net.fetch })
  const recipient = 'ab'.repeat(32)
  const { epoch, reward } = await claimer.epoch()
  assert.equal(reward, 5)
  const sentBefore = net.sent.length
  net.busyNext(1, '1')
  const result = await claimer.claim(recipient.toUpperCase())
  assert.deepEqual(result, { nullifier: identity.nullifier(epoch).toString(), recipient, amount: 5, epoch, balance: 5 })
  assert.equal(await claimer.balance(recipient), 5)

  // Anonymous on the wire: no authentication, no device id, no commitment, no leaf index.
  const claimRequests = net.sent.slice(sentBefore).filter(s => s.method === 'POST')
  assert.equal(claimRequests.length, 2, 'the busy answer and the retry')
  for (const request of net.sent.slice(sentBefore)) {
    assert.deepEqual(Object.keys(request.headers).filter(h => h !== 'content-type'), [], `${request.url} carries ${JSON.stringify(request.headers)}`)
    const text = request.url + (request.body ?? '')
    for (const secretish of [keyPair.id, identity.commitment.toString(), exportZkIdentity(identity).slice(2), BigInt(exportZkIdentity(identity)).toString()]) {
      assert.ok(!text.includes(secretish), `${request.url} mentions ${secretish}`)
    }
  }
  assert.deepEqual(Object.keys(JSON.parse(claimRequests[1].body!) as object).sort(), ['epoch', 'nullifierHash', 'proof', 'recipient', 'root'])

  // A second claim in the epoch: refused before proving (the nullifier is recorded), and by the hub without the check.
  const posts = () => net.sent.filter(s => s.method === 'POST').length
  const postsBefore = posts()
  await assert.rejects(claimer.claim('cd'.repeat(32)), (err: unknown) => err instanceof ZkClaimRefusedError && err.reason === 'double_claim' && !err.fromHub && err.status === 409)
  assert.equal(posts(), postsBefore, 'nothing was posted')
  const unchecked = new ZkClaimer({ baseUrl, identity, artifacts, tree, precheck: false })
  await assert.rejects(unchecked.claim('cd'.repeat(32), epoch), (err: unknown) => err instanceof ZkClaimRefusedError && err.reason === 'double_claim' && err.fromHub && err.code === 'MN_ERR_ZK_DOUBLE_CLAIM')
  assert.equal(await claimer.balance('cd'.repeat(32)), 0)

  // A pinned epoch that is not the current one is refused locally.
  await assert.rejects(claimer.claim(recipient, epoch - 1), (err: unknown) => err instanceof ZkClaimRefusedError && err.reason === 'stale_epoch' && !err.fromHub)
  assert.equal(posts(), postsBefore)

  // An identity that was never added: ZkNotInTreeError, and nothing about it reaches the hub.
  const stranger = createZkIdentity()
  const strangerNet = recordingFetch()
  const lost = new ZkClaimer({ baseUrl, identity: stranger, artifacts, fetch: strangerNet.fetch })
  await assert.rejects(lost.claim(recipient), (err: unknown) => err instanceof ZkNotInTreeError && err.leafCount === 8 && err.commitment === stranger.commitment.toString())
  assert.deepEqual(strangerNet.sent.filter(s => s.method !== 'GET'), [])
  assert.ok(strangerNet.sent.every(s => /\/v1\/zk\/(epoch|leaves|roots)/.test(s.url)), 'only the public reads')
  assert.ok(!strangerNet.sent.some(s => s.url.includes(stranger.nullifier(epoch).toString())))
  // And proveClaim refuses another identity's path before snarkjs runs.
  await assert.rejects(proveClaim({ identity: stranger, path: tree.path(identity.commitment), root: tree.root, recipient, amount: 5, epoch, artifacts }), ArgumentError)
})

test('a busy hub is retried a bounded number of times, then its refusal comes with Retry-After', async t => {
  t.after(() => closeProver())
  const hub = await startTestHub(t, { zk: { reward: 2 } })
  const baseUrl = `http://127.0.0.1:${hub.httpPort}`
  const principal = await enrollPrincipal(hub)
  const identity = createZkIdentity()
  await addZkCommitment(new HubHttpClient({ baseUrl, keyPair: keyPairFromSecretKey(principal.secretKey) }), identity)
  const net = recordingFetch()
  const claimer = new ZkClaimer({ baseUrl, identity, artifacts: await loadClaimArtifacts(), fetch: net.fetch, busyRetries: 1, maxRetryAfterSeconds: 5 })
  net.busyNext(2, '0')
  await assert.rejects(claimer.claim('ef'.repeat(32)), (err: unknown) => err instanceof ZkClaimRefusedError && err.reason === 'busy' && err.fromHub && err.status === 503 && err.retryAfterSeconds === 0)
  assert.equal(net.sent.filter(s => s.method === 'POST').length, 2, 'the first answer and one retry')
  assert.equal(await claimer.balance('ef'.repeat(32)), 0)
})
