// Off-circuit half of the claim circuit's specification (circuits/claim.circom, docs/zklock.md):
// the field mapping of a claim's content, the identity leaf, the nullifier, the tree's zero
// values and the exact order of the public signals. Prover and hub must compute these the
// same way; the hub rebuilds the public signals itself and never takes them from the prover.
//
// Uses poseidon-lite (not circomlibjs: importing circomlibjs after snarkjs orphans snarkjs's
// worker threads). poseidon-lite's PoseidonN is circomlib's Poseidon(N) (same constants).

// One file per arity: the package's index would pull in the constants of all sixteen.
import { poseidon1 } from 'poseidon-lite/poseidon1'
import { poseidon2 } from 'poseidon-lite/poseidon2'
import { poseidon4 } from 'poseidon-lite/poseidon4'

/** The BN254 scalar field: every signal is an integer modulo this prime. */
export const FIELD_P = 21888242871839275222246405745257275088548364400416034343698204186575808495617n
/** Depth of the identity tree: 2^20 = 1,048,576 leaves. */
export const TREE_DEPTH = 20
/** The value of an empty leaf. */
export const ZERO_LEAF = 0n
/** Upper bounds (exclusive) of a claim's amount and epoch: unsigned 64-bit integers. */
export const MAX_AMOUNT = 1n << 64n
export const MAX_EPOCH = 1n << 64n

/** Order of the circuit's public signals (snarkjs publicSignals / verifier input). */
export const PUBLIC_SIGNALS = ['root', 'nullifierHash', 'signalHash', 'epoch'] as const

export interface ClaimContent {
  /** The recipient's ed25519 public key: 32 bytes, as 64 hex digits. */
  recipient: string
  /** Unsigned integer < 2^64. */
  amount: bigint
  /** Unsigned integer < 2^64. */
  epoch: bigint
}

export interface PublicSignals {
  root: bigint
  nullifierHash: bigint
  signalHash: bigint
  epoch: bigint
}

export interface MerkleProof {
  /** Sibling of the path's node at each level, level 0 next to the leaves. */
  pathElements: bigint[]
  /** Bit i of the leaf's index: 0 when the path's node is the left child at level i. */
  pathIndices: number[]
}

function checkRange(name: string, v: bigint, max: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v >= max) throw new RangeError(`${name} must be a bigint in [0, ${max})`)
}

/**
 * The recipient's 32-byte key as two field elements: [hi, lo], the big-endian integers of
 * bytes 0..15 and 16..31. Each is < 2^128 < p, so the mapping is injective.
 */
export function recipientToField(recipientHex: string): [bigint, bigint] {
  if (!/^[0-9a-fA-F]{64}$/.test(recipientHex)) throw new TypeError('recipient must be 32 bytes as 64 hex digits')
  const hex = recipientHex.toLowerCase()
  return [BigInt('0x' + hex.slice(0, 32)), BigInt('0x' + hex.slice(32))]
}

/** signalHash = Poseidon(recipientHi, recipientLo, amount, epoch). */
export function claimSignalHash(c: ClaimContent): bigint {
  checkRange('amount', c.amount, MAX_AMOUNT)
  checkRange('epoch', c.epoch, MAX_EPOCH)
  const [hi, lo] = recipientToField(c.recipient)
  return poseidon4([hi, lo, c.amount, c.epoch])
}

function checkSecret(secret: bigint): void {
  if (typeof secret !== 'bigint' || secret <= 0n || secret >= FIELD_P) throw new RangeError('secret must be a bigint in [1, p)')
}

/** A new identity secret: 31 random bytes (248 bits, always < p), never 0. */
export function newIdentitySecret(): bigint {
  const b = crypto.getRandomValues(new Uint8Array(31))
  // Hex by hand rather than Buffer, which browsers do not have (the device SDK runs there).
  const s = BigInt('0x' + Array.from(b, byte => byte.toString(16).padStart(2, '0')).join(''))
  return s === 0n ? newIdentitySecret() : s
}

/** The device's leaf in the identity tree: Poseidon(secret). */
export function identityLeaf(secret: bigint): bigint {
  checkSecret(secret)
  return poseidon1([secret])
}

/** nullifierHash = Poseidon(secret, epoch): one claim per identity and epoch. */
export function nullifierHash(secret: bigint, epoch: bigint): bigint {
  checkSecret(secret)
  checkRange('epoch', epoch, MAX_EPOCH)
  return poseidon2([secret, epoch])
}

/** zeros[0] = 0 (the empty leaf), zeros[i+1] = Poseidon(zeros[i], zeros[i]); zeros[depth] is the empty tree's root. */
export function zeroHashes(depth = TREE_DEPTH): bigint[] {
  const z = [ZERO_LEAF]
  for (let i = 0; i < depth; i++) z.push(poseidon2([z[i], z[i]]))
  return z
}

/** The public signals in circuit order, as decimal strings (what snarkjs.groth16.verify takes). */
export function publicSignalsArray(s: PublicSignals): string[] {
  return PUBLIC_SIGNALS.map(k => s[k].toString())
}

/**
 * A sparse Poseidon Merkle tree of fixed depth, leaves at any index, empty leaves 0.
 * Stores only the non-empty nodes: fine for tests and for a hub with up to a few hundred
 * thousand devices (each leaf costs `depth` map entries).
 */
export class SparseMerkleTree {
  readonly depth: number
  readonly zeros: bigint[]
  private readonly levels: Map<number, bigint>[]

  constructor(depth = TREE_DEPTH) {
    if (!Number.isInteger(depth) || depth < 1 || depth > 32) throw new RangeError('depth must be in [1, 32]')
    this.depth = depth
    this.zeros = zeroHashes(depth)
    this.levels = Array.from({ length: depth + 1 }, () => new Map<number, bigint>())
  }

  private node(level: number, index: number): bigint {
    return this.levels[level].get(index) ?? this.zeros[level]
  }

  get root(): bigint {
    return this.node(this.depth, 0)
  }

  leaf(index: number): bigint {
    return this.node(0, index)
  }

  set(index: number, leaf: bigint): void {
    if (!Number.isInteger(index) || index < 0 || index >= 2 ** this.depth) throw new RangeError('leaf index out of range')
    if (leaf < 0n || leaf >= FIELD_P) throw new RangeError('leaf must be a field element')
    this.levels[0].set(index, leaf)
    let i = index
    for (let level = 0; level < this.depth; level++) {
      const left = this.node(level, i & ~1)
      const right = this.node(level, i | 1)
      i = Math.floor(i / 2)
      this.levels[level + 1].set(i, poseidon2([left, right]))
    }
  }

  proof(index: number): MerkleProof {
    if (!Number.isInteger(index) || index < 0 || index >= 2 ** this.depth) throw new RangeError('leaf index out of range')
    const pathElements: bigint[] = []
    const pathIndices: number[] = []
    let i = index
    for (let level = 0; level < this.depth; level++) {
      pathIndices.push(i & 1)
      pathElements.push(this.node(level, i ^ 1))
      i = Math.floor(i / 2)
    }
    return { pathElements, pathIndices }
  }
}

/** Root computed from a leaf and its path, as the circuit does. */
export function rootFromProof(leaf: bigint, p: MerkleProof): bigint {
  let node = leaf
  for (let i = 0; i < p.pathElements.length; i++) {
    node = p.pathIndices[i] === 0 ? poseidon2([node, p.pathElements[i]]) : poseidon2([p.pathElements[i], node])
  }
  return node
}

/** The full witness input of the circuit (decimal strings), for snarkjs.groth16.fullProve. */
export function claimCircuitInput(args: { secret: bigint; proof: MerkleProof; root: bigint; claim: ClaimContent }): Record<string, string | string[]> {
  const { secret, proof, root, claim } = args
  if (proof.pathElements.length !== TREE_DEPTH || proof.pathIndices.length !== TREE_DEPTH) throw new RangeError(`the path must have ${TREE_DEPTH} levels`)
  return {
    root: root.toString(),
    nullifierHash: nullifierHash(secret, claim.epoch).toString(),
    signalHash: claimSignalHash(claim).toString(),
    epoch: claim.epoch.toString(),
    secret: secret.toString(),
    pathElements: proof.pathElements.map(String),
    pathIndices: proof.pathIndices.map(String),
  }
}
