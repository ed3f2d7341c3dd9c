/**
 * The device SDK's ZK claim side (docs/zklock.md, "The SDK's side"): an anonymous identity
 * and its storage, adding its commitment, leaf sync with local Merkle paths, Groth16 proofs
 * and `ZkClaimer.claim()`. A separate entry (`metanode/device-sdk/zk`) because the prover,
 * snarkjs, is large: devices that never claim do not bundle it. Runs in Node 20+ and
 * browsers; the Node helpers (FileZkIdentityStore, loadClaimArtifacts) are in `./node.js`.
 */
export {
  ZkIdentity, createZkIdentity, zkIdentityFromSecret, identityCommitment, exportZkIdentity, importZkIdentity,
  loadOrCreateZkIdentity, MemoryZkIdentityStore, type ZkIdentityStore,
} from './zk-identity.js'
export {
  ZkTreeSync, ZK_LEAVES_MAX, ZK_PAGE_SIZE_DEFAULT, ZK_PAGE_SIZE_MAX,
  type ZkTreeSyncOptions, type ZkSyncResult, type ZkMerklePath,
} from './zk-tree.js'
export {
  proveClaim, closeProver, preloadClaimArtifacts,
  type ClaimArtifacts, type ClaimProof, type Groth16Proof, type ProveClaimArgs,
} from './zk-prove.js'
export {
  ZkClaimer, addZkCommitment,
  type ZkClaimerOptions, type ZkClaimResult, type ZkClaimRecord, type ZkCommitmentAdded, type ZkEpoch,
} from './zk-claim.js'
export type { AnonymousHttpOptions } from './zk-http.js'
export type { MerkleProof } from '../circuits/claim-inputs.js'
export {
  MetanodeSdkError, ArgumentError, HttpError, KeyError, ZkClaimRefusedError, ZkTreeError, ZkNotInTreeError,
  type ZkClaimRefusal,
} from './errors.js'
