// A pool of worker threads that verify Groth16 proofs (snarkjs) so that the hub's event loop
// never waits on a pairing. Work waits in a bounded FIFO queue in this thread; each worker
// takes one request at a time. Past `queueMax` waiting requests, verify() rejects at once
// with QueueFullError (HTTP: 503 with Retry-After). A malformed proof resolves false; a
// worker that dies is replaced (the request it held rejects with VerifierCrashedError).

import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'

/** BN254 base field (proof coordinates) and scalar field (public signals). */
const FIELD_Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583n
const FIELD_R = 21888242871839275222246405745257275088548364400416034343698204186575808495617n
const DECIMAL = /^(0|[1-9][0-9]{0,77})$/

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError'
  readonly code = 'ZK_QUEUE_FULL'
  /** Suggested Retry-After, in seconds. */
  readonly retryAfterSeconds: number
  constructor(queueMax: number, retryAfterSeconds = 1) {
    super(`verifier queue full (${queueMax} waiting)`)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

export class VerifierClosedError extends Error {
  override readonly name = 'VerifierClosedError'
  readonly code = 'ZK_VERIFIER_CLOSED'
  constructor() {
    super('verifier pool closed')
  }
}

export class VerifierCrashedError extends Error {
  override readonly name = 'VerifierCrashedError'
  readonly code = 'ZK_VERIFIER_CRASHED'
  constructor(cause: unknown) {
    super(`verifier worker died: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
  }
}

export interface Groth16ProofLike {
  pi_a: string[]
  pi_b: string[][]
  pi_c: string[]
  protocol?: string
  curve?: string
}

export interface VerifierPoolOptions {
  /** The circuit's verification_key.json (groth16, bn128). */
  verificationKey: { protocol: string; curve: string; nPublic: number; [k: string]: unknown }
  /** Worker threads; default os.availableParallelism(). */
  size?: number
  /** Requests allowed to wait for a worker (not counting those being verified); default 1024. */
  queueMax?: number
}

/** For tests: `pool[kWorkers]!()` lists the live workers. */
export const kWorkers = Symbol('verifier-pool.workers')

export interface VerifierPool {
  [kWorkers]?: () => Worker[]
  /** Resolves true for a valid proof, false for an invalid or malformed one. */
  verify(proof: unknown, publicSignals: string[]): Promise<boolean>
  /** Requests queued or being verified. */
  readonly pending: number
  /** Terminates the workers; queued and running requests reject with VerifierClosedError. Idempotent. */
  close(): Promise<void>
}

function isCoord(v: unknown, max: bigint): boolean {
  return typeof v === 'string' && DECIMAL.test(v) && BigInt(v) < max
}

/** A cheap structural check of a Groth16 proof and its public signals (no curve arithmetic). */
export function isWellFormedRequest(proof: unknown, publicSignals: unknown, nPublic: number): boolean {
  if (!Array.isArray(publicSignals) || publicSignals.length !== nPublic) return false
  if (!publicSignals.every(s => isCoord(s, FIELD_R))) return false
  if (typeof proof !== 'object' || proof === null) return false
  const p = proof as Record<string, unknown>
  if (p.protocol !== undefined && p.protocol !== 'groth16') return false
  if (p.curve !== undefined && p.curve !== 'bn128') return false
  const g1 = (v: unknown) => Array.isArray(v) && v.length === 3 && v.every(c => isCoord(c, FIELD_Q))
  const g2 = (v: unknown) =>
    Array.isArray(v) && v.length === 3 && v.every(c => Array.isArray(c) && c.length === 2 && c.every(x => isCoord(x, FIELD_Q)))
  return g1(p.pi_a) && g2(p.pi_b) && g1(p.pi_c)
}

interface Job {
  id: number
  proof: unknown
  publicSignals: string[]
  resolve(ok: boolean): void
  reject(err: Error): void
}

interface Slot {
  worker: Worker
  job: Job | null
  ready: boolean
  dead: boolean
}

const MAX_STARTUP_FAILURES = 3


/**
 * How to start a worker: from dist, the compiled verifier-worker.js; from the TypeScript
 * source (tests, under tsx), a small bootstrap that registers tsx's loader in the worker and
 * then imports verifier-worker.ts (on Node 20, `--import tsx` in a worker's execArgv does
 * not apply to the worker's entry module).
 */
function workerSpec(): { entry: URL | string; eval: boolean; execArgv: string[] } {
  // Flags a worker cannot take (the test runner's) are dropped.
  const execArgv = process.execArgv.filter(a => !a.startsWith('--test'))
  if (!import.meta.url.endsWith('.ts')) return { entry: new URL('./verifier-worker.js', import.meta.url), eval: false, execArgv }
  const ts = new URL('./verifier-worker.ts', import.meta.url).href
  const tsxApi = import.meta.resolve('tsx/esm/api')
  const entry = `import(${JSON.stringify(tsxApi)}).then(m => { m.register(); return import(${JSON.stringify(ts)}) })`
  return { entry, eval: true, execArgv }
}

export function createVerifierPool(opts: VerifierPoolOptions): VerifierPool {
  const size = opts.size ?? availableParallelism()
  const queueMax = opts.queueMax ?? 1024
  if (!Number.isInteger(size) || size < 1) throw new RangeError('size must be an integer >= 1')
  if (!Number.isInteger(queueMax) || queueMax < 0) throw new RangeError('queueMax must be an integer >= 0')
  const vk = opts.verificationKey
  if (vk?.protocol !== 'groth16' || vk.curve !== 'bn128' || !Number.isInteger(vk.nPublic)) {
    throw new TypeError('verificationKey must be a groth16 bn128 verification key')
  }

  const spec = workerSpec()
  const queue: Job[] = []
  const slots: Slot[] = []
  let nextId = 1
  let running = 0
  let closed = false
  let closing: Promise<void> | null = null
  let startupFailures = 0
  let broken: Error | null = null

  function spawn(): void {
    const worker = new Worker(spec.entry, {
      eval: spec.eval,
      // mod/type/name are for the `web-worker` package (ffjavascript, under snarkjs): imported
      // in any worker thread, it takes over and imports workerData.mod, buffering the port's
      // messages until that import settles. An empty module lets it settle at once.
      workerData: { verificationKey: vk, mod: 'data:text/javascript,', type: 'module', name: 'zk-verifier' },
      execArgv: spec.execArgv,
    })
    const slot: Slot = { worker, job: null, ready: false, dead: false }
    slots.push(slot)
    worker.on('message', (m: { ready?: true; id?: number; ok?: boolean }) => {
      if (m.ready) {
        slot.ready = true
        startupFailures = 0
        dispatch()
        return
      }
      const job = slot.job
      if (!job || job.id !== m.id) return
      slot.job = null
      running--
      job.resolve(m.ok === true)
      dispatch()
    })
    const die = (cause: unknown) => {
      if (slot.dead) return
      slot.dead = true
      slots.splice(slots.indexOf(slot), 1)
      const job = slot.job
      slot.job = null
      if (job) running--
      if (closed) return
      if (broken) {
        job?.reject(broken)
        return
      }
      job?.reject(new VerifierCrashedError(cause))
      if (!slot.ready && ++startupFailures >= MAX_STARTUP_FAILURES) {
        // The worker cannot even start (snarkjs missing, bad loader): stop respawning.
        broken = new VerifierCrashedError(cause)
        for (const j of queue.splice(0)) j.reject(broken)
        for (const s of slots) void s.worker.terminate()
        return
      }
      spawn()
      dispatch()
    }
    worker.on('error', die)
    worker.on('exit', code => die(new Error(`exit code ${code}`)))
  }

  function dispatch(): void {
    for (const slot of slots) {
      if (queue.length === 0) return
      // Not before 'ready': snarkjs's web-worker starts the port early, and a message that
      // arrives before the worker's own listener would be lost.
      if (slot.job || slot.dead || !slot.ready) continue
      const job = queue.shift()!
      slot.job = job
      running++
      try {
        slot.worker.postMessage({ id: job.id, proof: job.proof, publicSignals: job.publicSignals })
      } catch {
        // Not cloneable (functions, symbols): not a proof.
        slot.job = null
        running--
        job.resolve(false)
      }
    }
  }

  for (let i = 0; i < size; i++) spawn()

  return {
    [kWorkers]: () => slots.map(s => s.worker),
    verify(proof: unknown, publicSignals: string[]): Promise<boolean> {
      if (closed) return Promise.reject(new VerifierClosedError())
      if (broken) return Promise.reject(broken)
      // Malformed requests never reach a worker.
      if (!isWellFormedRequest(proof, publicSignals, vk.nPublic)) return Promise.resolve(false)
      if (queue.length >= queueMax && !slots.some(s => !s.job && !s.dead && s.ready)) {
        return Promise.reject(new QueueFullError(queueMax))
      }
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ id: nextId++, proof, publicSignals: [...publicSignals], resolve, reject })
        dispatch()
      })
    },
    get pending() {
      return queue.length + running
    },
    close(): Promise<void> {
      if (closing) return closing
      closed = true
      const err = new VerifierClosedError()
      for (const j of queue.splice(0)) j.reject(err)
      for (const s of slots) {
        if (s.job) {
          s.job.reject(err)
          s.job = null
        }
      }
      running = 0
      closing = Promise.all(slots.map(s => s.worker.terminate())).then(() => undefined)
      return closing
    },
  }
}
