/**
 * Merkle insertion rate of the identity tree at 100k leaves (src/zklock/tree-store.ts):
 * fills a real SQLite file with N leaves, then times the rebuild from the leaves, the
 * reopen from the saved frontier, and persisted appends at that size.
 * Usage: node --import tsx bench/zk-tree.ts [leaves=100000] [appends=200]
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { identityLeaf } from '../circuits/claim-inputs.js'
import { openStore } from '../src/store/index.js'
import { TreeStore } from '../src/zklock/tree-store.js'

const N = Number(process.argv[2] ?? 100_000)
const APPENDS = Number(process.argv[3] ?? 200)
const dir = mkdtempSync(join(tmpdir(), 'zk-tree-bench-'))
const store = openStore({ file: join(dir, 'hub.db') })
try {
  const addPrincipal = store.db.prepare("INSERT INTO principals (id, public_key, role, created_ms) VALUES (?, ?, 'device', 0)")
  const addLeaf = store.db.prepare('INSERT INTO zk_leaves (idx, commitment, device_id, added_ms) VALUES (?, ?, ?, 0)')
  const ids: string[] = []
  store.db.transaction(() => {
    for (let i = 0; i < N + APPENDS; i++) {
      const id = randomBytes(16).toString('hex')
      addPrincipal.run(id, randomBytes(32))
      ids.push(id)
      // Leaves need only be distinct field elements here; hashing 100k secrets is not what is measured.
      if (i < N) addLeaf.run(i, String(BigInt(i) * 7919n + 1n), id)
    }
  })()
  let t = performance.now()
  const rebuilt = new TreeStore(store.db)
  console.log(`rebuild from ${N} leaves (no saved frontier): ${((performance.now() - t) / 1000).toFixed(1)} s`)
  t = performance.now()
  const tree = new TreeStore(store.db)
  console.log(`reopen from the saved frontier: ${(performance.now() - t).toFixed(1)} ms (root matches: ${tree.currentRoot() === rebuilt.currentRoot()})`)
  const leaves = Array.from({ length: APPENDS }, (_, i) => identityLeaf(BigInt(i + 1)))
  t = performance.now()
  for (let i = 0; i < APPENDS; i++) tree.addCommitment(ids[N + i], leaves[i])
  const ms = performance.now() - t
  console.log(`persisted appends at ${N} leaves: ${APPENDS} in ${ms.toFixed(0)} ms = ${(APPENDS / ms * 1000).toFixed(0)} leaves/s (${(ms / APPENDS).toFixed(2)} ms each)`)
  t = performance.now()
  const page = tree.leaves(50_000, 10_000)
  console.log(`GET leaves page of ${page.commitments.length}: ${(performance.now() - t).toFixed(1)} ms`)
} finally {
  await store.close()
  rmSync(dir, { recursive: true, force: true })
}
