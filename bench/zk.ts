/**
 * `npm run bench:zk`: what ZKLock costs (docs/zklock.md), in one run, side by side:
 *
 * - **proof generation** (snarkjs `groth16.fullProve` of the claim circuit: witness + prove,
 *   what a device or app does): the first in this process (cold: reads claim.wasm and the
 *   zkey, builds the BN254 curve and starts its threads) and the median of the next ones;
 * - **Groth16 verification** rate: sequentially in this thread with a single-threaded curve
 *   (what one worker of the hub's pool does), with snarkjs's default curve (its own worker
 *   threads) for reference, and through the hub's pool (src/zklock/verifier-pool.ts) with a
 *   worker per core; the ratio pool / one thread (the aim: ≥ 1.6× on 2 cores);
 * - **identity tree** appends at 100k leaves in the hub's SQLite-backed tree
 *   (src/zklock/tree-store.ts, the real database and migrations), in leaves/s, beside the
 *   same appends in memory (Poseidon alone), so the share of the hashing shows.
 *
 * The tree is prefilled quickly: 100k leaf rows, 100k root rows and a frontier written
 * straight into the database. That frontier is not the hash of those leaves (computing it
 * honestly is 2n Poseidon hashes, ~50 s at 100k on this machine); an append costs the same
 * 20 hashes and the same SQL whatever values the frontier holds. BENCH_ZK_REBUILD=1 prefills
 * honestly instead, by letting TreeStore rebuild from the leaves, and times that rebuild.
 *
 * Knobs (environment, bounded): BENCH_ZK_PROOFS (warm proofs, 5), BENCH_ZK_VERIFY
 * (verifications per phase, 300), BENCH_ZK_LEAVES (leaves before the appends, 100000),
 * BENCH_ZK_APPENDS (timed appends, 2000), BENCH_ZK_ROUNDS (rounds of one thread vs
 * pool, in balanced order, best of each reported; 2), BENCH_ZK_REBUILD (1: honest prefill),
 * BENCH_ZK_DATA_DIR (where the database goes; the system's temporary directory by default).
 * docs/performance.md ("ZKLock") has the figures and where the time goes.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Database } from 'better-sqlite3'
import { FIELD_P, SparseMerkleTree, claimCircuitInput, identityLeaf } from '../circuits/claim-inputs.js'
import { openStore } from '../src/store/index.js'
import { circuitArtifact } from '../src/zklock/artifacts.js'
import { IncrementalMerkleTree, TREE_DEPTH } from '../src/zklock/tree.js'
import { TreeStore } from '../src/zklock/tree-store.js'
import { createVerifierPool } from '../src/zklock/verifier-pool.js'
import { machineBusyFraction, machineCpu } from './lib/proc.js'
import { LatencyRecorder, median } from './lib/stats.js'
import { dec, int, table } from './lib/report.js'
import { envNumber } from './lib/knobs.js'

interface Knobs {
  proofs: number
  verify: number
  leaves: number
  appends: number
  rounds: number
  rebuild: boolean
  dataDir: string
}

type Snarkjs = typeof import('snarkjs')
type Curve = { terminate (): Promise<void> }
const g = globalThis as { curve_bn128?: Curve | null }

function readKnobs (): Knobs {
  const num = (name: string, fallback: number, min: number, max: number): number => envNumber(name, fallback, min, max, { integer: true })
  return {
    proofs: num('BENCH_ZK_PROOFS', 5, 1, 50),
    verify: num('BENCH_ZK_VERIFY', 300, 10, 10_000),
    leaves: num('BENCH_ZK_LEAVES', 100_000, 0, 1_000_000),
    appends: num('BENCH_ZK_APPENDS', 2_000, 10, 48_000),
    rounds: num('BENCH_ZK_ROUNDS', 2, 1, 10),
    rebuild: process.env.BENCH_ZK_REBUILD === '1',
    dataDir: process.env.BENCH_ZK_DATA_DIR || tmpdir(),
  }
}

function log (message: string): void {
  process.stderr.write(`[bench:zk] ${message}\n`)
}

/** Wall time of a phase, with the cores this process (all its threads) and everything else used meanwhile. */
interface Measured<T> {
  value: T
  ms: number
  ownCores: number
  otherCores: number
}

async function measure<T> (fn: () => Promise<T> | T): Promise<Measured<T>> {
  const cores = availableParallelism()
  const machine0 = machineCpu()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const value = await fn()
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const ownCores = (cpu.user + cpu.system) / 1000 / ms
  const busyCores = machineBusyFraction(machine0, machineCpu()) * cores
  return { value, ms, ownCores, otherCores: Math.max(0, busyCores - ownCores) }
}

/** A field element derived from a label: distinct values of the size real commitments have. */
function fieldOf (label: string): bigint {
  return BigInt('0x' + createHash('sha256').update(label).digest('hex')) % FIELD_P || 1n
}

// --- proofs and verification -------------------------------------------------------------

interface ProofFigures {
  importMs: number
  cold: Measured<unknown>
  warm: number[]
  proof: unknown
  publicSignals: string[]
}

async function benchProofs (knobs: Knobs): Promise<ProofFigures & { snarkjs: Snarkjs }> {
  // Imported here, not at the top, so that its load time is a figure and not hidden in startup.
  let t0 = performance.now()
  const snarkjs = await import('snarkjs')
  const importMs = performance.now() - t0
  const secret = 0xdeadbeefcafen
  const tree = new SparseMerkleTree()
  tree.set(777, identityLeaf(secret))
  const path = tree.proof(777)
  const prove = (amount: bigint) => snarkjs.groth16.fullProve(
    claimCircuitInput({ secret, proof: path, root: tree.root, claim: { recipient: 'a1'.repeat(32), amount, epoch: 7n } }),
    circuitArtifact('claim.wasm'),
    circuitArtifact('claim_final.zkey'),
  )
  log('proof generation: cold')
  const cold = await measure(() => prove(1n))
  const { proof, publicSignals } = cold.value
  log(`proof generation: ${knobs.proofs} warm`)
  const warm: number[] = []
  for (let i = 0; i < knobs.proofs; i++) {
    t0 = performance.now()
    await prove(BigInt(i + 2))
    warm.push(performance.now() - t0)
  }
  return { snarkjs, importMs, cold, warm, proof, publicSignals }
}

interface VerifyFigures {
  /** One per round, in the order run. */
  oneThread: Array<Measured<unknown>>
  pool: Array<Measured<unknown>>
  snarkjsDefault: Measured<unknown>
  workers: number
}

async function benchVerify (knobs: Knobs, snarkjs: Snarkjs, proof: unknown, publicSignals: string[]): Promise<VerifyFigures> {
  const vkey = JSON.parse(readFileSync(circuitArtifact('verification_key.json'), 'utf8')) as import('snarkjs').VerificationKey
  const typed = proof as import('snarkjs').Groth16Proof
  const sequential = async (): Promise<void> => {
    for (let i = 0; i < knobs.verify; i++) if (!(await snarkjs.groth16.verify(vkey, publicSignals, typed))) throw new Error('a valid proof did not verify')
  }

  // snarkjs's default curve: the prover's, already built, with a worker thread per core.
  log(`verification: ${knobs.verify} sequential, snarkjs's default curve`)
  for (let i = 0; i < 5; i++) await snarkjs.groth16.verify(vkey, publicSignals, typed)
  const snarkjsDefault = await measure(sequential)
  await g.curve_bn128?.terminate()

  // One thread: a single-threaded curve installed where groth16.verify finds it, exactly as
  // each worker of the pool does (src/zklock/verifier-worker.ts).
  const getCurve = snarkjs.curves.getCurveFromName as (name: string, options: { singleThread: boolean }) => Promise<Curve>
  g.curve_bn128 = await getCurve('bn128', { singleThread: true })
  for (let i = 0; i < 5; i++) await snarkjs.groth16.verify(vkey, publicSignals, typed)

  const workers = availableParallelism()
  const pool = createVerifierPool({ verificationKey: vkey, size: workers, queueMax: knobs.verify })
  try {
    // Starts the workers (each loads snarkjs and builds its curve) and warms them.
    await Promise.all(Array.from({ length: workers * 4 }, () => pool.verify(proof, publicSignals)))
    const throughPool = async (): Promise<void> => {
      const results = await Promise.all(Array.from({ length: knobs.verify }, () => pool.verify(proof, publicSignals)))
      if (!results.every(Boolean)) throw new Error('a valid proof did not verify in the pool')
    }
    // Rounds in balanced order (one, pool, pool, one, ...), so that drift in the machine's
    // other load falls on both alike; the report takes each side's best round.
    const oneThread: Array<Measured<unknown>> = []
    const pooled: Array<Measured<unknown>> = []
    for (let round = 0; round < knobs.rounds; round++) {
      for (const side of round % 2 === 0 ? ['one', 'pool'] : ['pool', 'one']) {
        log(`verification, round ${round + 1}: ${knobs.verify} ${side === 'one' ? 'sequential, one thread' : `through the pool, ${workers} workers`}`)
        if (side === 'one') oneThread.push(await measure(sequential))
        else pooled.push(await measure(throughPool))
      }
    }
    return { oneThread, pool: pooled, snarkjsDefault, workers }
  } finally {
    await pool.close()
    // A single-threaded curve has no threads to stop; unset it so nothing reuses it.
    g.curve_bn128 = null
  }
}

// --- the identity tree -------------------------------------------------------------------

interface TreeFigures {
  prefill: Measured<unknown>
  rebuilt: Measured<unknown> | null
  reopen: Measured<unknown>
  appends: Measured<unknown>
  appendP50: number
  appendP99: number
  inMemory: Measured<unknown>
  page: Measured<number>
}

/** Principals for every leaf (and for the appends to come), leaf rows, and a root row per size. */
function prefill (db: Database, knobs: Knobs): string[] {
  const addPrincipal = db.prepare("INSERT INTO principals (id, public_key, role, created_ms) VALUES (?, ?, 'device', 0)")
  const addLeaf = db.prepare('INSERT INTO zk_leaves (idx, commitment, device_id, added_ms) VALUES (?, ?, ?, 0)')
  const addRoot = db.prepare('INSERT INTO zk_roots (root, leaf_count, created_ms) VALUES (?, ?, 0)')
  const saveFrontier = db.prepare('INSERT INTO zk_frontier (id, leaf_count, root, frontier) VALUES (1, ?, ?, ?)')
  const ids: string[] = []
  db.transaction(() => {
    for (let i = 0; i < knobs.leaves + knobs.appends; i++) {
      const id = randomBytes(16).toString('hex')
      addPrincipal.run(id, randomBytes(32))
      ids.push(id)
      if (i >= knobs.leaves) continue
      addLeaf.run(i, fieldOf(`leaf ${i}`).toString(), id)
      // Every append records its root: the table a real tree of this size has.
      if (i + 1 < knobs.leaves) addRoot.run(fieldOf(`root ${i + 1}`).toString(), i + 1)
    }
    if (!knobs.rebuild && knobs.leaves > 0) {
      const frontier = Array.from({ length: TREE_DEPTH }, (_, level) => fieldOf(`frontier ${level}`))
      const root = new IncrementalMerkleTree(TREE_DEPTH, { size: knobs.leaves, frontier }).root.toString()
      addRoot.run(root, knobs.leaves)
      saveFrontier.run(knobs.leaves, root, JSON.stringify(frontier.map(String)))
    }
  })()
  return ids
}

async function benchTree (knobs: Knobs): Promise<TreeFigures> {
  const dir = mkdtempSync(join(knobs.dataDir, 'metanode-zk-bench-'))
  const store = await openStore({ file: join(dir, 'hub.db') })
  try {
    log(`tree: prefilling ${int(knobs.leaves)} leaves${knobs.rebuild ? ' (honest: TreeStore rebuilds from the leaves)' : ''}`)
    const prefilled = await measure(() => prefill(store.sql.connection, knobs))
    const ids = prefilled.value
    const rebuilt = knobs.rebuild ? await measure(() => TreeStore.open(store.sql)) : null
    const reopen = await measure(() => TreeStore.open(store.sql))
    const tree = reopen.value
    if (await tree.leafCount() !== knobs.leaves) throw new Error(`the tree opened with ${await tree.leafCount()} leaves, not ${knobs.leaves}`)

    // The same state in memory, to time the hashing alone on the same appends.
    const row = store.sql.connection.prepare('SELECT leaf_count, root, frontier FROM zk_frontier WHERE id = 1').get() as { leaf_count: number, root: string, frontier: string }
    const memory = new IncrementalMerkleTree(TREE_DEPTH, { size: row.leaf_count, frontier: (JSON.parse(row.frontier) as string[]).map(BigInt), root: BigInt(row.root) })
    const leaves = Array.from({ length: knobs.appends }, (_, i) => fieldOf(`append ${i}`))

    log(`tree: ${int(knobs.appends)} persisted appends at ${int(knobs.leaves)} leaves`)
    const latency = new LatencyRecorder(knobs.appends)
    const appends = await measure(async () => {
      for (let i = 0; i < knobs.appends; i++) {
        const t0 = performance.now()
        await tree.addCommitment(ids[knobs.leaves + i], leaves[i])
        latency.record(performance.now() - t0)
      }
    })
    const [appendP50, appendP99] = latency.percentiles([50, 99])
    log(`tree: the same ${int(knobs.appends)} appends in memory`)
    const inMemory = await measure(() => {
      for (const leaf of leaves) memory.append(leaf)
    })
    if (memory.root.toString() !== await tree.currentRoot()) throw new Error('the tree in memory and the persisted one disagree')
    const page = await measure(async () => (await tree.leaves(Math.floor(knobs.leaves / 2), 10_000)).commitments.length)
    return { prefill: prefilled, rebuilt, reopen, appends, appendP50, appendP99, inMemory, page }
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

// --- the report --------------------------------------------------------------------------

function cores (m: Measured<unknown>): [string, string] {
  return [dec(m.ownCores, 2), dec(m.otherCores, 2)]
}

function report (knobs: Knobs, p: ProofFigures, v: VerifyFigures, t: TreeFigures): string {
  const rate = (m: Measured<unknown>, n: number): number => (n * 1000) / m.ms
  const best = (ms: Array<Measured<unknown>>): Measured<unknown> => ms.reduce((a, b) => (b.ms < a.ms ? b : a))
  const rounds = (ms: Array<Measured<unknown>>): string => ms.length > 1 ? `; rounds ${ms.map(m => dec(rate(m, knobs.verify), 0)).join(', ')} /s` : ''
  const one = best(v.oneThread)
  const pooled = best(v.pool)
  const oneRate = rate(one, knobs.verify)
  const defaultRate = rate(v.snarkjsDefault, knobs.verify)
  const poolRate = rate(pooled, knobs.verify)
  const ratio = poolRate / oneRate
  // Other processes taking a core during the pool's best round leave it less than the machine.
  const disturbed = pooled.otherCores > 0.3 ? ` (other processes took ${dec(pooled.otherCores, 2)} cores meanwhile: the pool had less than ${v.workers})` : ''
  const appendRate = rate(t.appends, knobs.appends)
  const memoryRate = rate(t.inMemory, knobs.appends)
  const hashUs = (t.inMemory.ms * 1000) / (knobs.appends * TREE_DEPTH)
  const warmSorted = [...p.warm].sort((a, b) => a - b)
  // Per CPU-second of this process: the steadier figure when other processes take cores.
  const perCpuS = (m: Measured<unknown>, n: number): string => `${int(n / (m.ms / 1000 * m.ownCores))} per CPU-s`
  const perCpu = (m: Measured<unknown>): number => knobs.verify / (m.ms / 1000 * m.ownCores)
  const rows: string[][] = [
    ['proof generation, cold (first in the process)', `${int(p.cold.ms)} ms`, `reads claim.wasm and the zkey, builds the curve and starts its threads; importing snarkjs took ${int(p.importMs)} ms more`, ...cores(p.cold)],
    [`proof generation, warm (median of ${knobs.proofs})`, `${int(median(p.warm))} ms`, `range ${int(warmSorted[0])}–${int(warmSorted[warmSorted.length - 1])} ms`, '', ''],
    [`verification, sequential, one thread${knobs.rounds > 1 ? ` (best of ${knobs.rounds})` : ''}`, `${dec(oneRate)} /s`, `${dec(one.ms / knobs.verify, 2)} ms each, ${perCpuS(one, knobs.verify)}; single-threaded curve, as in one pool worker${rounds(v.oneThread)}`, ...cores(one)],
    ["verification, sequential, snarkjs's default curve", `${dec(defaultRate)} /s`, `${dec(v.snarkjsDefault.ms / knobs.verify, 2)} ms each, ${perCpuS(v.snarkjsDefault, knobs.verify)}; the curve's own ${availableParallelism()} threads (reference)`, ...cores(v.snarkjsDefault)],
    [`verification, hub's worker pool, ${v.workers} workers${knobs.rounds > 1 ? ` (best of ${knobs.rounds})` : ''}`, `${dec(poolRate)} /s`, `${int(knobs.verify)} submitted at once, ${perCpuS(pooled, knobs.verify)}${rounds(v.pool)}`, ...cores(pooled)],
    ['  ratio pool / one thread', `**${dec(ratio, 2)}×**`, `aim ≥ 1.6×: ${ratio >= 1.6 ? 'met' : 'NOT met'}${disturbed}; per CPU-second the pool does ${dec(perCpu(pooled) / perCpu(one), 2)}× the work of one thread`, '', ''],
  ]
  if (t.rebuilt) rows.push([`tree: rebuild from ${int(knobs.leaves)} leaves (no saved frontier)`, `${dec(t.rebuilt.ms / 1000)} s`, `about 2n Poseidon hashes`, ...cores(t.rebuilt)])
  rows.push(
    [`tree: appends at ${int(knobs.leaves)} leaves, persisted`, `**${int(appendRate)} leaves/s**`, `${dec(t.appends.ms / knobs.appends, 2)} ms each (p50 ${dec(t.appendP50, 2)}, p99 ${dec(t.appendP99, 2)}), ${perCpuS(t.appends, knobs.appends)}; ${int(knobs.appends)} appends, each a SQLite transaction`, ...cores(t.appends)],
    ['  the same appends in memory (Poseidon only)', `${int(memoryRate)} leaves/s`, `${TREE_DEPTH} Poseidon2 each, ${int(hashUs)} µs a hash, ${perCpuS(t.inMemory, knobs.appends)}`, ...cores(t.inMemory)],
    ['tree: reopen from the saved frontier', `${dec(t.reopen.ms)} ms`, '', '', ''],
    ['tree: a page of 10,000 leaves (GET /v1/zk/leaves, the query)', `${dec(t.page.ms)} ms`, '', '', ''],
  )
  return table(['figure', 'value', 'detail', 'bench process, cores', 'other processes, cores'], rows)
}

async function main (): Promise<void> {
  const knobs = readKnobs()
  const started = performance.now()
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  // Other work on the machine skews every figure here: measure it once before starting.
  const idle0 = machineCpu()
  await new Promise(resolve => setTimeout(resolve, 1_000))
  const background = machineBusyFraction(idle0, machineCpu()) * availableParallelism()
  const facts = [
    `machine: ${availableParallelism()} cores (nproc), ${cpuModel}; Node ${process.version}`,
    `background load before the run: ${dec(background, 2)} cores busy (load average ${loadavg().map(l => dec(l, 2)).join(' / ')})${background > 0.3 ? ': the machine is not quiet, expect noisy figures' : ''}`,
    `database: ${knobs.dataDir}`,
  ]
  for (const fact of facts) log(fact)

  const proofs = await benchProofs(knobs)
  const verify = await benchVerify(knobs, proofs.snarkjs, proofs.proof, proofs.publicSignals)
  const tree = await benchTree(knobs)

  console.log(`# Metanode ZKLock benchmark\n\n${facts.join('; ')}\n`)
  console.log(report(knobs, proofs, verify, tree))
  console.log(
    '\n"bench process, cores": CPU of this process (all its threads, the pool\'s workers included) over the phase\'s wall time; ' +
      '"other processes": the rest of the machine meanwhile. Tree prefill: ' +
      (knobs.rebuild ? 'honest (TreeStore rebuilt the frontier from the leaves).' : 'leaf and root rows and a frontier written directly (an append costs the same whatever the frontier holds; BENCH_ZK_REBUILD=1 prefills honestly).') +
      ` Prefill took ${dec(tree.prefill.ms / 1000)} s.`,
  )
  console.log(`\nTotal run time: ${dec((performance.now() - started) / 1000, 0)} s.`)
}

main().catch(err => {
  console.error(err)
  process.exitCode = 1
}).finally(() => g.curve_bn128?.terminate())
