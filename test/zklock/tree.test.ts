import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import { poseidon2 } from 'poseidon-lite'
import { SparseMerkleTree, identityLeaf, newIdentitySecret } from '../../circuits/claim-inputs.js'
import { IncrementalMerkleTree, FIELD_P, zeros } from '../../src/zklock/tree.js'
import { TreeStore } from '../../src/zklock/tree-store.js'
import { treeRoutes } from '../../src/zklock/tree-routes.js'
import type { Identity } from '../../src/cage/identity.js'
import { sharedDatabase, sqlEngines } from '../helpers/sql-engines.js'
import { addPrincipal, revokePrincipal } from './sql-helpers.js'

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

/** The HTTP status of what `p` rejects with, 0 when it resolves. */
async function status (p: Promise<unknown>): Promise<number> {
  try {
    await p
  } catch (err) {
    return (err as { statusCode: number }).statusCode
  }
  return 0
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

for (const engine of sqlEngines()) {
  describe(`the identity tree store on ${engine.name}`, { skip: engine.skip }, () => {
    test('the store appends commitments, records roots and survives reopen', async t => {
      const { connect } = await sharedDatabase(engine, t)
      const leaves = leavesN(5)
      const sparse = new SparseMerkleTree()
      const roots: string[] = []
      {
        const db = await connect()
        const tree = await TreeStore.open(db)
        assert.equal(await tree.currentRoot(), zeros(20)[20].toString())
        for (let i = 0; i < leaves.length; i++) {
          const added = await tree.addCommitment(await addPrincipal(db), leaves[i].toString(), 1000 + i)
          sparse.set(i, leaves[i])
          assert.equal(added.index, i)
          assert.equal(added.leafCount, i + 1)
          assert.equal(added.root, sparse.root.toString())
          roots.push(added.root)
        }
        await db.close()
      }
      const db = await connect()
      const tree = await TreeStore.open(db)
      assert.equal(await tree.leafCount(), 5)
      assert.equal(await tree.currentRoot(), roots[4])
      const page = await tree.leaves(0, 3)
      assert.deepEqual(page, { start: 0, commitments: leaves.slice(0, 3).map(String), leafCount: 5, root: roots[4] })
      assert.deepEqual((await tree.leaves(3, 100)).commitments, leaves.slice(3).map(String))
      assert.deepEqual((await tree.leaves(5)).commitments, [])
      // Appending after reopen continues the same tree.
      const next = identityLeaf(99n)
      sparse.set(5, next)
      assert.equal((await tree.addCommitment(await addPrincipal(db), next)).root, sparse.root.toString())

      // A lost frontier is rebuilt from the leaves.
      await db.run('DELETE FROM zk_frontier')
      const rebuilt = await TreeStore.open(db)
      assert.equal(await rebuilt.currentRoot(), sparse.root.toString())
      assert.deepEqual(await db.get('SELECT leaf_count FROM zk_frontier'), { leaf_count: 6 })
    })

    test('only the current root and the last N before it are known', async t => {
      const db = await engine.open(t)
      const tree = await TreeStore.open(db, { rootHistory: 2 })
      const roots: string[] = [await tree.currentRoot()]
      for (const leaf of leavesN(5)) roots.push((await tree.addCommitment(await addPrincipal(db), leaf)).root)
      // roots[0] is the empty tree's; the tree now has 5 leaves (roots[5]).
      assert.equal(await tree.isKnownRoot(roots[5]), true)
      assert.equal(await tree.isKnownRoot(BigInt(roots[4])), true)
      assert.equal(await tree.isKnownRoot(roots[3]), true)
      assert.equal(await tree.isKnownRoot(roots[2]), false)
      assert.equal(await tree.isKnownRoot(roots[0]), false)
      assert.equal(await tree.isKnownRoot('12345'), false)
      assert.equal(await tree.isKnownRoot('not a number'), false)
      assert.deepEqual((await tree.recentRoots()).map(r => r.root), [roots[5], roots[4], roots[3]])
      assert.deepEqual((await tree.recentRoots()).map(r => r.leafCount), [5, 4, 3])
      const none = await TreeStore.open(db, { rootHistory: 0 })
      assert.equal(await none.isKnownRoot(roots[5]), true)
      assert.equal(await none.isKnownRoot(roots[4]), false)
    })

    test('a second commitment, a duplicate, a value outside [1, p) and a non-device are refused', async t => {
      const db = await engine.open(t)
      const tree = await TreeStore.open(db)
      const [a, b] = leavesN(2)
      const first = await addPrincipal(db)
      await tree.addCommitment(first, a)
      assert.equal(await status(tree.addCommitment(first, b)), 409, 'second commitment of a device')
      const second = await addPrincipal(db)
      assert.equal(await status(tree.addCommitment(second, a)), 409, 'duplicate commitment')
      assert.equal(await status(tree.addCommitment(second, '0' + a.toString())), 409, 'same value, leading zero')
      for (const bad of ['0', '00', FIELD_P.toString(), (FIELD_P + 1n).toString(), '-1', '0x10', '', '1'.repeat(80), 0n, FIELD_P]) {
        assert.equal(await status(tree.addCommitment(second, bad)), 400, String(bad))
      }
      assert.equal(await status(tree.addCommitment('f'.repeat(32), b)), 404)
      const service = await addPrincipal(db, 'service')
      assert.equal(await status(tree.addCommitment(service, b)), 400)
      await revokePrincipal(db, second)
      assert.equal(await status(tree.addCommitment(second, b)), 403)
      assert.equal(await tree.leafCount(), 1)
      assert.deepEqual(await db.get('SELECT count(*) AS n FROM zk_roots'), { n: 2 }, 'refusals record no root')
      assert.equal((await tree.addCommitment(await addPrincipal(db), FIELD_P - 1n)).leafCount, 2, 'p - 1 is a valid leaf')
    })

    test('routes: a device adds its own, the admin any; roots and leaves are public', async t => {
      const db = await engine.open(t)
      const tree = await TreeStore.open(db, { rootHistory: 4 })
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
      const dev = await addPrincipal(db)
      const other = await addPrincipal(db)
      const [a, b] = leavesN(2).map(String)

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
      assert.equal(roots.body.root, await tree.currentRoot())
      assert.equal(roots.body.leafCount, 2)
      assert.equal(roots.body.history, 4)
      assert.deepEqual(roots.body.recent.map((r: { leafCount: number }) => r.leafCount), [2, 1, 0])
      assert.equal(roots.body.recent[0].root, roots.body.root)
      const leaves = await call('GET', '/v1/zk/leaves?after=1&limit=5')
      assert.deepEqual(leaves.body, { start: 1, commitments: [b], leafCount: 2, root: await tree.currentRoot() })
      assert.deepEqual((await call('GET', '/v1/zk/leaves')).body.commitments, [a, b])
      assert.equal(IncrementalMerkleTree.fromLeaves((await call('GET', '/v1/zk/leaves')).body.commitments.map(BigInt)).root.toString(), roots.body.root)
      assert.equal((await call('GET', '/v1/zk/leaves?limit=0')).status, 400)
      assert.equal((await call('GET', '/v1/zk/leaves?after=-1')).status, 400)
      assert.equal((await call('GET', '/v1/zk/leaves?limit=100000')).status, 400)
      assert.equal((await call('GET', '/v1/zk/leaves?other=1')).status, 400)
    })

    test('two stores on one database see each other\'s appends and continue one tree', async t => {
      // Two connections, as two hub processes sharing the database hold: each appends in
      // turn, and each must notice the other's leaves before its next read or append.
      const { connect } = await sharedDatabase(engine, t)
      const [dbA, dbB] = [await connect(), await connect()]
      const [a, b] = [await TreeStore.open(dbA), await TreeStore.open(dbB)]
      const leaves = leavesN(6)
      const sparse = new SparseMerkleTree()
      for (let i = 0; i < leaves.length; i++) {
        const [store, db] = i % 3 === 2 ? [b, dbB] : [a, dbA]
        const added = await store.addCommitment(await addPrincipal(db), leaves[i])
        sparse.set(i, leaves[i])
        assert.equal(added.index, i)
        assert.equal(added.root, sparse.root.toString())
        for (const other of [a, b]) {
          assert.equal(await other.currentRoot(), sparse.root.toString())
          assert.equal(await other.isKnownRoot(added.root), true)
        }
      }
      assert.deepEqual((await b.leaves()).commitments, leaves.map(String))
      assert.deepEqual(await a.roots(), await b.roots())
    })

    test('appends racing on one connection and through two connections do not fork the tree', async t => {
      // On SQLite two connections of one process cannot both hold a transaction open (the
      // second would wait on the file's write lock without letting the first finish), so
      // there the race is on one connection; on PostgreSQL it is on two, each with a pool of
      // its own, which is what two hosts of a fleet are.
      const { connect } = await sharedDatabase(engine, t)
      const dbA = await connect()
      const dbB = engine.name === 'postgres' ? await connect() : dbA
      const [a, b] = [await TreeStore.open(dbA), await TreeStore.open(dbB)]
      const n = 24
      const devices: string[] = []
      for (let i = 0; i < n; i++) devices.push(await addPrincipal(dbA))
      const leaves = leavesN(n)
      const added = await Promise.all(leaves.map((leaf, i) => (i % 2 === 0 ? a : b).addCommitment(devices[i], leaf)))
      assert.deepEqual(added.map(x => x.index).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i), 'one leaf per index')
      // The leaves in index order make the tree both stores hold.
      const stored = (await a.leaves(0, n)).commitments
      const root = IncrementalMerkleTree.fromLeaves(stored.map(BigInt)).root.toString()
      assert.deepEqual([...stored].sort(), leaves.map(String).sort())
      for (const store of [a, b]) {
        assert.equal(await store.leafCount(), n)
        assert.equal(await store.currentRoot(), root)
      }
      // Every append's root is the root of the leaves up to its own.
      for (const x of added) assert.equal(x.root, IncrementalMerkleTree.fromLeaves(stored.slice(0, x.index + 1).map(BigInt)).root.toString())
      assert.deepEqual(await dbA.get('SELECT count(*) AS n FROM zk_roots'), { n: n + 1 })
      // A third store, opened afresh, agrees.
      assert.equal(await (await TreeStore.open(await connect())).currentRoot(), root)
    })

    test('insertion rate (a hundred appends at depth 20; npm run bench:zk measures it at 100k leaves)', async t => {
      const db = await engine.open(t)
      const tree = await TreeStore.open(db)
      const n = 100
      const ids: string[] = []
      for (let i = 0; i < n; i++) ids.push(await addPrincipal(db))
      const leaves = Array.from({ length: n }, () => identityLeaf(newIdentitySecret()))
      const start = performance.now()
      for (let i = 0; i < n; i++) await tree.addCommitment(ids[i], leaves[i])
      const ms = performance.now() - start
      t.diagnostic(`zk tree on ${engine.name}: ${n} persisted appends in ${ms.toFixed(0)} ms = ${(n / ms * 1000).toFixed(0)} leaves/s (${(ms / n).toFixed(2)} ms each)`)
      assert.equal(await tree.leafCount(), n)
    })
  })
}
