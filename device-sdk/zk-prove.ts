/**
 * Claim proofs (docs/zklock.md §2, §3): snarkjs's Groth16 prover over the committed circuit
 * (claim.wasm computes the witness, claim_final.zkey is the proving key). snarkjs is loaded
 * on the first proof, not when this module is: it is large, and most code that imports the
 * ZK side (identities, enrolment) never proves. Bundlers resolve it through its `browser`
 * export condition to snarkjs's self-contained browser build.
 *
 * snarkjs builds the BN254 curve once, with a pool of worker threads (web workers in
 * browsers), kept in `globalThis.curve_bn128` and reused by later proofs. Those workers keep
 * a Node process alive: call closeProver() when done proving.
 */
import {
  MAX_AMOUNT, MAX_EPOCH, TREE_DEPTH, claimCircuitInput, claimSignalHash, publicSignalsArray, rootFromProof, type MerkleProof,
} from '../circuits/claim-inputs.js'
import { ArgumentError, HttpError } from './errors.js'
import { zkIdentitySecret, type ZkIdentity } from './zk-identity.js'

/**
 * The circuit's artifacts, as bytes or as where to get them. A string is a URL (fetched
 * once and kept: about 5 MB together); in Node, a string that is not an http(s) URL is a
 * file path. `loadClaimArtifacts()` in `device-sdk/node` reads the ones in the package.
 * They must be the hub's: a proof made with another zkey does not verify.
 */
export interface ClaimArtifacts {
  /** circuits/build/claim.wasm */
  wasm: Uint8Array | string
  /** circuits/build/claim_final.zkey */
  zkey: Uint8Array | string
}

/** A snarkjs Groth16 proof, as the hub takes it. */
export interface Groth16Proof {
  pi_a: string[]
  pi_b: string[][]
  pi_c: string[]
  protocol: string
  curve: string
}

export interface ProveClaimArgs {
  identity: ZkIdentity
  /** The identity's path (ZkTreeSync.path), whose siblings lead from its commitment to `root`. */
  path: MerkleProof
  /** A root the hub accepts: the current one or a recent one. */
  root: bigint | string
  /** The recipient's ed25519 public key, 64 hex digits. */
  recipient: string
  /** The epoch's reward: the hub recomputes the signal hash with its own, so it must be that. */
  amount: bigint | number
  epoch: bigint | number
  artifacts: ClaimArtifacts
  /** For URL artifacts; the global fetch by default. */
  fetch?: typeof fetch
}

export interface ClaimProof {
  proof: Groth16Proof
  /** [root, nullifierHash, signalHash, epoch], decimal. */
  publicSignals: string[]
  root: string
  nullifierHash: string
  /** Lowercase hex. */
  recipient: string
  amount: bigint
  epoch: bigint
}

interface Snarkjs {
  groth16: {
    fullProve (input: Record<string, unknown>, wasm: string | Uint8Array, zkey: string | Uint8Array): Promise<{ proof: Groth16Proof, publicSignals: string[] }>
  }
}

let snarkjs: Promise<Snarkjs> | undefined
const inFlight = new Set<Promise<unknown>>()
const fetched = new Map<string, Promise<Uint8Array>>()

function loadSnarkjs (): Promise<Snarkjs> {
  // snarkjs ships no types (Snarkjs above declares the one call used). A literal specifier,
  // so that bundlers include it; dynamic, so that it loads on the first proof.
  // @ts-ignore TS7016: no declaration file for 'snarkjs' (the tests declare one; the build has none)
  snarkjs ??= (import('snarkjs') as Promise<unknown> as Promise<Snarkjs>).catch((err: unknown) => {
    snarkjs = undefined
    throw err
  })
  return snarkjs
}

/**
 * Proves that `identity` is in the tree of `root` and binds the claim (recipient, amount,
 * epoch) to the proof. Checks locally first that the path leads to `root`, so a stale or
 * foreign path fails here with a clear error rather than inside the witness calculator.
 * About a second (more for the first proof of a process); the secret never leaves it.
 */
export async function proveClaim (args: ProveClaimArgs): Promise<ClaimProof> {
  const secret = zkIdentitySecret(args.identity)
  if (typeof args.recipient !== 'string' || !/^[0-9a-fA-F]{64}$/.test(args.recipient)) {
    throw new ArgumentError('recipient expected an ed25519 public key as 64 hex digits')
  }
  const recipient = args.recipient.toLowerCase()
  const amount = uint64('amount', args.amount, MAX_AMOUNT)
  const epoch = uint64('epoch', args.epoch, MAX_EPOCH)
  const root = field('root', args.root)
  const path = args.path
  if (!Array.isArray(path?.pathElements) || !Array.isArray(path?.pathIndices)) throw new ArgumentError('path expected { pathElements, pathIndices }')
  if (path.pathElements.length !== TREE_DEPTH || path.pathIndices.length !== TREE_DEPTH) throw new ArgumentError(`path expected ${TREE_DEPTH} levels`)
  if (rootFromProof(args.identity.commitment, path) !== root) {
    throw new ArgumentError("the path does not lead from this identity's commitment to root: sync the tree again, or this is another identity's path")
  }
  const claim = { recipient, amount, epoch }
  const input = claimCircuitInput({ secret, proof: path, root, claim })
  const [wasm, zkey, prover] = await Promise.all([
    artifact('wasm', args.artifacts?.wasm, args.fetch),
    artifact('zkey', args.artifacts?.zkey, args.fetch),
    loadSnarkjs(),
  ])
  const proving = prover.groth16.fullProve(input, wasm, zkey)
  inFlight.add(proving)
  let made: { proof: Groth16Proof, publicSignals: string[] }
  try {
    made = await proving
  } finally {
    inFlight.delete(proving)
  }
  const expected = publicSignalsArray({ root, nullifierHash: BigInt(input.nullifierHash as string), signalHash: claimSignalHash(claim), epoch })
  // Other artifacts (another circuit, another signal order) would make a proof the hub refuses.
  if (made.publicSignals.length !== expected.length || made.publicSignals.some((s, i) => s !== expected[i])) {
    throw new ArgumentError('the proof\'s public signals are not the claim circuit\'s: are these the hub\'s claim.wasm and claim_final.zkey?')
  }
  return { proof: made.proof, publicSignals: made.publicSignals, root: root.toString(), nullifierHash: expected[1], recipient, amount, epoch }
}

/**
 * Ends snarkjs's curve worker threads (web workers in browsers), once the proofs under way
 * have settled. Call it when a Node process is done proving, or it does not exit; a later
 * proof starts them again. They are shared with any other snarkjs use in the process.
 */
export async function closeProver (): Promise<void> {
  await Promise.allSettled([...inFlight])
  const curve = (globalThis as { curve_bn128?: { terminate (): Promise<void> } | null }).curve_bn128
  if (curve) await curve.terminate()
}

/** Fetches URL artifacts ahead of the first proof (e.g. while the app starts). */
export async function preloadClaimArtifacts (artifacts: ClaimArtifacts, fetchImpl?: typeof fetch): Promise<ClaimArtifacts> {
  const [wasm, zkey] = await Promise.all([artifact('wasm', artifacts?.wasm, fetchImpl), artifact('zkey', artifacts?.zkey, fetchImpl)])
  return { wasm, zkey }
}

function isNode (): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: unknown } } }).process?.versions?.node === 'string'
}

/** Bytes as they are; a URL fetched (once per URL); a file path (Node) for snarkjs to read. */
async function artifact (name: string, source: Uint8Array | string | undefined, fetchImpl?: typeof fetch): Promise<Uint8Array | string> {
  if (source instanceof Uint8Array) return source
  if (typeof source !== 'string' || source === '') throw new ArgumentError(`artifacts.${name} expected a Uint8Array or a URL`)
  if (isNode() && !/^https?:\/\//i.test(source)) return source
  let bytes = fetched.get(source)
  if (!bytes) {
    const get = fetchImpl ?? globalThis.fetch.bind(globalThis)
    bytes = get(source, { credentials: 'omit' }).then(async response => {
      if (!response.ok) throw new HttpError(response.status, 'MN_ERR_HTTP', `could not fetch the claim circuit's ${name} from ${source}`)
      return new Uint8Array(await response.arrayBuffer())
    })
    fetched.set(source, bytes)
    // A failed download is not kept: the next proof tries again.
    bytes.catch(() => fetched.delete(source))
  }
  return bytes
}

function uint64 (name: string, value: bigint | number, max: bigint): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value)) value = BigInt(value)
  if (typeof value !== 'bigint' || value < 0n || value >= max) throw new ArgumentError(`${name} expected an unsigned integer below 2^64`)
  return value
}

function field (name: string, value: bigint | string): bigint {
  const v = typeof value === 'string' && /^[0-9]{1,78}$/.test(value) ? BigInt(value) : value
  if (typeof v !== 'bigint' || v < 0n) throw new ArgumentError(`${name} expected a field element (bigint or decimal string)`)
  return v
}
