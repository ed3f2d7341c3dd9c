import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import Fastify from 'fastify'
import { poseidon2 } from 'poseidon-lite'
import { SparseMerkleTree, identityLeaf, newIdentitySecret } from '../../circuits/claim-inputs.js'
import { openStore, type SqliteStore, type Store } from '../../src/store/index.js'
import { IncrementalMerkleTree, FIELD_P, zeros } from '../../src/zklock/tree.js'
import { TreeStore } from '../../src/zklock/tree-store.js'
import { treeRoutes } from '../../src/zklock/tree-routes.js'
import type { Identity } from '../../src/cage/identity.js'
import { hex, newPublicKey, tempDir } from '../store/helpers.js'

/** The root of a full binary tree over `leaves` padded with 0 to 2^depth, hashing every node. */
function bruteForceRoot (leaves: bigint[], depth: number): bigint {
  let level = [...leaves, ...new Array<bigint>(2 ** depth - leaves.length).fill(0n)]
  while (level.length > 1) {
    const next: bigint[] = []
    for (let i = 0; i < level.length; i += 2) next.push(poseidon2([level[i], level[i + 1]]))
    level = next
  }
  return level[0]
}

const leavesN = (n: number): bigint[] => Array.from({ length: n }, (_, i) => identityLeaf(BigInt(i + 1)))

async function device (store: Store): Promise<string> {
  return (await store.principals.create({ publicKey: hex(await newPublicKey()), role: 'device' })).id
}

async function open (t: TestContext, options: ConstructorParameters<typeof TreeStore>[1] = {}, file?: string): Promise<{ store: SqliteStore, tree: TreeStore, file: string }> {
  file ??= join(await tempDir(t), 'hub.db')
  const store = await openStore({ file })
  t.after(() => store.close())
  return { store, tree: new TreeStore(store.db, options), file }
}

test('appended roots equal a brute-force full tree (depth 4, every count up to full)', () => {
  const leaves = leavesN(16)
  const tree = new IncrementalMerkleTree(4)
  assert.equal(tree.root, bruteForceRoot([], 4))
  assert.equal(tree.root, zeros(4)[4])
  for (let n = 1; n <= 16; n++) {
    const { index, root } = tree.append(leaves[n - 1])
    assert.equal(index, n - 1)
    assert.equal(root, bruteForceRoot(leaves.slice(0, n), 4), `n = ${n}`)
    const rebuilt = IncrementalMerkleTree.fromLeaves(leaves.slice(0, n), 4)
    assert.equal(rebuilt.root, root)
    if (n < 16) {
      assert.equal(new IncrementalMerkleTree(4, { size: n, frontier: tree.state().frontier }).root, root)
      // The rebuilt frontier resumes appending as the incremental one does.
      assert.equal(rebuilt.preview(leaves[n]).root, bruteForceRoot(leaves.slice(0, n + 1), 4))
    }
  }
  assert.throws(() => tree.append(leaves[0]), /full/)
  assert.throws(() => new IncrementalMerkleTree(4).append(0n), RangeError)
  assert.throws(() => new IncrementalMerkleTree(4).append(FIELD_P), RangeError)
})

test('depth-20 roots equal the circuit spec\'s sparse tree and a brute-force depth-20 climb', () => {
  const leaves = leavesN(9)
  const tree = new IncrementalMerkleTree()
  const sparse = new SparseMerkleTree()
  for (let n = 1; n <= leaves.length; n++) {
    sparse.set(n - 1, leaves[n - 1])
    assert.equal(tree.append(leaves[n - 1]).root, sparse.root, `n = ${n}`)
  }
  // Brute force at depth 20 over the first 2^4 positions, then the empty right halves above.
  let root = bruteForceRoot(leaves, 4)
  const z = zeros(20)
  for (let level = 4; level < 20; level++) root = poseidon2([root, z[level]])
  assert.equal(tree.root, root)
  assert.equal(IncrementalMerkleTree.fromLeaves(leaves).root, root)
})

test('the store appends commitments, records roots and survives reopen', async t => {
  const dir = await tempDir(t)
  const file = join(dir, 'hub.db')
  const leaves = leavesN(5)
  const sparse = new SparseMerkleTree()
  const roots: string[] = []
  {
    const store = await openStore({ file })
    const tree = new TreeStore(store.db)
    assert.equal(tree.currentRoot(), zeros(20)[20].toString())
    for (let i = 0; i < leaves.length; i++) {
      const added = tree.addCommitment(await device(store), leaves[i].toString(), 1000 + i)
      sparse.set(i, leaves[i])
      assert.equal(added.index, i)
      assert.equal(added.leafCount, i + 1)
      assert.equal(added.root, sparse.root.toString())
      roots.push(added.root)
    }
    await store.close()
  }
  const store = await openStore({ file })
  t.after(() => store.close())
  const tree = new TreeStore(store.db)
  assert.equal(tree.leafCount, 5)
  assert.equal(tree.currentRoot(), roots[4])
  const page = tree.leaves(0, 3)
  assert.deepEqual(page, { start: 0, commitments: leaves.slice(0, 3).map(String), leafCount: 5, root: roots[4] })
  assert.deepEqual(tree.leaves(3, 100).commitments, leaves.slice(3).map(String))
  assert.deepEqual(tree.leaves(5).commitments, [])
  // Appending after reopen continues the same tree.
  const next = identityLeaf(99n)
  sparse.set(5, next)
  assert.equal(tree.addCommitment(await device(store), next).root, sparse.root.toString())

  // A lost frontier is rebuilt from the leaves.
  store.db.prepare('DELETE FROM zk_frontier').run()
  const rebuilt = new TreeStore(store.db)
  assert.equal(rebuilt.currentRoot(), sparse.root.toString())
  assert.equal(store.db.prepare('SELECT leaf_count FROM zk_frontier').pluck().get(), 6)
})

test('only the current root and the last N before it are known', async t => {
  const { store, tree } = await open(t, { rootHistory: 2 })
  const roots: string[] = [tree.currentRoot()]
  for (const leaf of leavesN(5)) roots.push(tree.addCommitment(await device(store), leaf).root)
  // roots[0] is the empty tree's; the tree now has 5 leaves (roots[5]).
  assert.equal(tree.isKnownRoot(roots[5]), true)
  assert.equal(tree.isKnownRoot(BigInt(roots[4])), true)
  assert.equal(tree.isKnownRoot(roots[3]), true)
  assert.equal(tree.isKnownRoot(roots[2]), false)
  assert.equal(tree.isKnownRoot(roots[0]), false)
  assert.equal(tree.isKnownRoot('12345'), false)
  assert.equal(tree.isKnownRoot('not a number'), false)
  assert.deepEqual(tree.recentRoots().map(r => r.root), [roots[5], roots[4], roots[3]])
  assert.deepEqual(tree.recentRoots().map(r => r.leafCount), [5, 4, 3])
  const none = new TreeStore(store.db, { rootHistory: 0 })
  assert.equal(none.isKnownRoot(roots[5]), true)
  assert.equal(none.isKnownRoot(roots[4]), false)
})

test('a second commitment, a duplicate, a value outside [1, p) and a non-device are refused', async t => {
  const { store, tree } = await open(t)
  const [a, b] = leavesN(2)
  const first = await device(store)
  tree.addCommitment(first, a)
  const status = (fn: () => unknown): number => {
    try {
      fn()
    } catch (err) {
      return (err as { statusCode: number }).statusCode
    }
    return 0
  }
  assert.equal(status(() => tree.addCommitment(first, b)), 409, 'second commitment of a device')
  const second = await device(store)
  assert.equal(status(() => tree.addCommitment(second, a)), 409, 'duplicate commitment')
  assert.equal(status(() => tree.addCommitment(second, '0' + a.toString())), 409, 'same value, leading zero')
  for (const bad of ['0', '00', FIELD_P.toString(), (FIELD_P + 1n).toString(), '-1', '0x10', '', '1'.repeat(80), 0n, FIELD_P]) {
    assert.equal(status(() => tree.addCommitment(second, bad)), 400, String(bad))
  }
  assert.equal(status(() => tree.addCommitment('f'.repeat(32), b)), 404)
  const service = (await store.principals.create({ publicKey: hex(await newPublicKey()), role: 'service' })).id
  assert.equal(status(() => tree.addCommitment(service, b)), 400)
  await store.principals.revoke(second, Date.now())
  assert.equal(status(() => tree.addCommitment(second, b)), 403)
  assert.equal(tree.leafCount, 1)
  assert.equal(store.db.prepare('SELECT count(*) FROM zk_roots').pluck().get(), 2, 'refusals record no root')
  assert.equal(tree.addCommitment(FIELD_P - 1n === 0n ? first : await device(store), FIELD_P - 1n).leafCount, 2, 'p - 1 is a valid leaf')
})

test('routes: a device adds its own, the admin any; roots and leaves are public', async t => {
  const { store, tree } = await open(t, { rootHistory: 4 })
  // The server's validation options (src/http/server.ts): no coercion, unknown properties are a 400.
  const app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } } })
  let who: Identity = { kind: 'anonymous' }
  app.decorateRequest('identity', null as never)
  app.addHook('onRequest', async request => { request.identity = who })
  app.register(treeRoutes, { tree })
  t.after(() => app.close())
  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await app.inject({ method, url, payload: payload as Record<string, unknown> })
    return { status: res.statusCode, body: res.json() }
  }
  const dev = await device(store)
  const other = await device(store)
  const [a, b, c] = leavesN(3).map(String)

  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: a })).status, 401)
  who = { kind: 'principal', id: dev, role: 'service' }
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: a })).status, 403)
  who = { kind: 'principal', id: dev, role: 'device' }
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: a, deviceId: other })).status, 403)
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: a, extra: 1 })).status, 400)
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: '0' })).status, 400)
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: FIELD_P.toString() })).status, 400)
  const added = await call('POST', '/v1/zk/commitments', { commitment: a })
  assert.equal(added.status, 201)
  assert.equal(added.body.deviceId, dev)
  assert.equal(added.body.index, 0)
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: b })).status, 409)

  who = { kind: 'admin' }
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: b })).status, 400, 'admin must name the device')
  assert.equal((await call('POST', '/v1/zk/commitments', { commitment: a, deviceId: other })).status, 409)
  const byAdmin = await call('POST', '/v1/zk/commitments', { commitment: b, deviceId: other })
  assert.equal(byAdmin.status, 201)
  assert.equal(byAdmin.body.index, 1)

  who = { kind: 'anonymous' }
  const roots = await call('GET', '/v1/zk/roots')
  assert.equal(roots.status, 200)
  assert.equal(roots.body.root, tree.currentRoot())
  assert.equal(roots.body.leafCount, 2)
  assert.equal(roots.body.history, 4)
  assert.deepEqual(roots.body.recent.map((r: { leafCount: number }) => r.leafCount), [2, 1, 0])
  const leaves = await call('GET', '/v1/zk/leaves?after=1&limit=5')
  assert.deepEqual(leaves.body, { start: 1, commitments: [b], leafCount: 2, root: tree.currentRoot() })
  assert.deepEqual((await call('GET', '/v1/zk/leaves')).body.commitments, [a, b])
  assert.equal(IncrementalMerkleTree.fromLeaves((await call('GET', '/v1/zk/leaves')).body.commitments.map(BigInt)).root.toString(), roots.body.root)
  assert.equal((await call('GET', '/v1/zk/leaves?limit=0')).status, 400)
  assert.equal((await call('GET', '/v1/zk/leaves?after=-1')).status, 400)
  assert.equal((await call('GET', '/v1/zk/leaves?limit=100000')).status, 400)
  assert.equal((await call('GET', '/v1/zk/leaves?other=1')).status, 400)
  void c
})

test('insertion rate (a few hundred appends at depth 20; npm run bench:zk measures it at 100k leaves)', async t => {
  const { store, tree } = await open(t)
  const n = 100
  const ids: string[] = []
  for (let i = 0; i < n; i++) ids.push(await device(store))
  const leaves = Array.from({ length: n }, () => identityLeaf(newIdentitySecret()))
  const start = performance.now()
  for (let i = 0; i < n; i++) tree.addCommitment(ids[i], leaves[i])
  const ms = performance.now() - start
  t.diagnostic(`zk tree: ${n} persisted appends in ${ms.toFixed(0)} ms = ${(n / ms * 1000).toFixed(0)} leaves/s (${(ms / n).toFixed(2)} ms each)`)
  assert.equal(tree.leafCount, n)
})
