/**
 * The hub's identity tree (docs/zklock.md §4): an append-only Merkle tree of depth 20 over
 * Poseidon2, empty leaves 0. It keeps only the frontier (the last filled left node at each
 * level), so an append costs `depth` hashes and memory is O(depth), whatever the leaf count.
 * Apps rebuild full paths themselves from the public leaves.
 */
import { poseidon2 } from 'poseidon-lite'
import { FIELD_P, TREE_DEPTH, zeroHashes } from '../../circuits/claim-inputs.js'

export { FIELD_P, TREE_DEPTH }

/** The state that lets a tree resume appending: leaf count and frontier (one node per level). */
export interface FrontierState {
  size: number
  frontier: bigint[]
  /** The root; checked against the frontier (required only for a full tree). */
  root?: bigint
}

const ZEROS_BY_DEPTH = new Map<number, readonly bigint[]>()

/** zeros[i]: the root of an empty subtree of height i (cached per depth). */
export function zeros (depth = TREE_DEPTH): readonly bigint[] {
  let z = ZEROS_BY_DEPTH.get(depth)
  if (!z) {
    z = Object.freeze(zeroHashes(depth))
    ZEROS_BY_DEPTH.set(depth, z)
  }
  return z
}

/** True for a valid leaf (commitment): a field element in [1, p). */
export function isValidLeaf (leaf: bigint): boolean {
  return typeof leaf === 'bigint' && leaf >= 1n && leaf < FIELD_P
}

export class IncrementalMerkleTree {
  readonly depth: number
  readonly capacity: number
  readonly #zeros: readonly bigint[]
  // #frontier[i]: the last node at level i that is a left child and complete; only read
  // when bit i of the size is 1 (the next node at level i is its right sibling).
  #frontier: bigint[]
  #size: number
  #root: bigint

  constructor (depth = TREE_DEPTH, state?: FrontierState) {
    if (!Number.isInteger(depth) || depth < 1 || depth > 32) throw new RangeError('depth must be in [1, 32]')
    this.depth = depth
    this.capacity = 2 ** depth
    this.#zeros = zeros(depth)
    this.#frontier = this.#zeros.slice(0, depth)
    this.#size = 0
    this.#root = this.#zeros[depth]
    if (state) {
      if (!Number.isSafeInteger(state.size) || state.size < 0 || state.size > this.capacity) throw new RangeError('size out of range')
      if (state.frontier.length !== depth) throw new RangeError(`the frontier must have ${depth} levels`)
      this.#frontier = state.frontier.slice()
      this.#size = state.size
      if (state.size < this.capacity) {
        this.#root = this.#computeRoot()
        if (state.root !== undefined && state.root !== this.#root) throw new RangeError('the frontier does not match its root')
      } else {
        // A full tree's last path is not in the frontier: its root must be given.
        if (state.root === undefined) throw new RangeError('a full tree needs its root')
        this.#root = state.root
      }
    }
  }

  /** A tree holding these leaves, built level by level (about 2n hashes, not n·depth). */
  static fromLeaves (leaves: readonly bigint[], depth = TREE_DEPTH): IncrementalMerkleTree {
    const z = zeros(depth)
    if (leaves.length > 2 ** depth) throw new RangeError('too many leaves for this depth')
    const frontier = z.slice(0, depth)
    let level: bigint[] = leaves.slice()
    for (let i = 0; i < depth; i++) {
      // The frontier holds the last complete left node: index (size >> i) - 1 when bit i of size is set.
      const n = level.length
      const complete = Math.floor(leaves.length / 2 ** i)
      if (complete % 2 === 1) frontier[i] = level[complete - 1]
      const next: bigint[] = new Array(Math.ceil(n / 2))
      for (let j = 0; j + 1 < n; j += 2) next[j / 2] = poseidon2([level[j], level[j + 1]])
      if (n % 2 === 1) next[(n - 1) / 2] = poseidon2([level[n - 1], z[i]])
      level = next
    }
    return new IncrementalMerkleTree(depth, { size: leaves.length, frontier, root: level[0] ?? z[depth] })
  }

  get size (): number { return this.#size }
  get root (): bigint { return this.#root }

  /** A copy of the state, to persist and to resume from. */
  state (): FrontierState {
    return { size: this.#size, frontier: this.#frontier.slice(), root: this.#root }
  }

  /** The root and frontier this tree would have after appending `leaf`, without changing it. */
  preview (leaf: bigint): { index: number, root: bigint, state: FrontierState } {
    if (!isValidLeaf(leaf)) throw new RangeError('a leaf must be a field element in [1, p)')
    if (this.#size >= this.capacity) throw new RangeError('the tree is full')
    const frontier = this.#frontier.slice()
    const index = this.#size
    let node = leaf
    let i = index
    for (let level = 0; level < this.depth; level++) {
      if ((i & 1) === 0) {
        frontier[level] = node
        node = poseidon2([node, this.#zeros[level]])
      } else {
        node = poseidon2([frontier[level], node])
      }
      i = Math.floor(i / 2)
    }
    return { index, root: node, state: { size: index + 1, frontier, root: node } }
  }

  /** Appends a leaf; returns its index and the new root. O(depth) hashes. */
  append (leaf: bigint): { index: number, root: bigint } {
    const next = this.preview(leaf)
    this.commit(next)
    return { index: next.index, root: next.root }
  }

  /** Adopts a state computed by preview() on this tree (after it was persisted). */
  commit (next: { root: bigint, state: FrontierState }): void {
    if (next.state.size !== this.#size + 1) throw new RangeError('stale preview')
    this.#frontier = next.state.frontier
    this.#size = next.state.size
    this.#root = next.root
  }

  #computeRoot (): bigint {
    // The root of `size` leaves, from the frontier: climb from the empty leaf at index size
    // (its left siblings are in the frontier, everything to its right is empty).
    let node = this.#zeros[0]
    let i = this.#size
    for (let level = 0; level < this.depth; level++) {
      node = (i & 1) === 0 ? poseidon2([node, this.#zeros[level]]) : poseidon2([this.#frontier[level], node])
      i = Math.floor(i / 2)
    }
    return node
  }
}
