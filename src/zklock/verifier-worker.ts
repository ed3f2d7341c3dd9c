// One verifier thread of the pool (verifier-pool.ts). Loads snarkjs once, builds the BN254
// curve once, single-threaded (the pool is the parallelism; a multi-threaded ffjavascript
// curve would start its own threads inside every worker), and installs it as
// globalThis.curve_bn128 so that snarkjs.groth16.verify reuses it on every call.
//
// Protocol: workerData = { verificationKey }; the parent posts { id, proof, publicSignals },
// the worker answers { id, ok: boolean }. Anything malformed answers ok: false: a bad proof
// never throws out of here.

import { parentPort, workerData } from 'node:worker_threads'
import { isWellFormedRequest } from './verifier-pool.js'

interface Curve {
  terminate(): Promise<void>
}
interface Snarkjs {
  groth16: { verify(vk: unknown, publicSignals: string[], proof: unknown): Promise<boolean> }
  curves: { getCurveFromName(name: string, options?: { singleThread?: boolean }): Promise<Curve> }
}

export interface VerifyRequest {
  id: number
  proof: unknown
  publicSignals: unknown
}
export interface VerifyResponse {
  id: number
  ok: boolean
}

if (!parentPort) throw new Error('verifier-worker must run in a worker thread')
const port = parentPort
const { verificationKey } = workerData as { verificationKey: { curve: string; nPublic: number } }

// A non-literal specifier: snarkjs ships no types (tests and bench declare them separately).
const snarkjsName = 'snarkjs'
const snarkjs = (await import(snarkjsName)) as Snarkjs
const g = globalThis as { curve_bn128?: Curve | null }
const curve = await snarkjs.curves.getCurveFromName(verificationKey.curve, { singleThread: true })
// ffjavascript's buildBn128() (what groth16.verify calls) returns this cached instance.
if (verificationKey.curve === 'bn128') g.curve_bn128 = curve

async function verify(req: VerifyRequest): Promise<boolean> {
  if (!isWellFormedRequest(req.proof, req.publicSignals, verificationKey.nPublic)) return false
  try {
    return (await snarkjs.groth16.verify(verificationKey, req.publicSignals as string[], req.proof)) === true
  } catch {
    return false
  }
}

port.on('message', (req: VerifyRequest) => {
  void verify(req).then(
    ok => port.postMessage({ id: req.id, ok } satisfies VerifyResponse),
    () => port.postMessage({ id: req.id, ok: false } satisfies VerifyResponse),
  )
})
port.postMessage({ ready: true })
