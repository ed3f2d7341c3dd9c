/**
 * The numbers of protocol v1 (docs/protocol.md): message types, envelope keys, rejection
 * codes and limits. Everything here is part of the wire contract: changing a value breaks
 * every device in the field.
 */

export const PROTOCOL_VERSION = 1

/** Message type codes (§5), by PascalCase name. */
export const MessageType = Object.freeze({
  Heartbeat: 0,
  StatusUpdate: 1,
  ConfigurationUpdate: 2,
  ConsensusProposal: 10,
  ConsensusVote: 11,
  ConsensusCommit: 12,
  TokenTransfer: 20,
  MiningReward: 21,
  EconomicMetrics: 22,
  AuthenticationRequest: 30,
  AuthenticationResponse: 31,
  SecurityAlert: 32,
  DataSync: 40,
  StateUpdate: 41,
  BlockchainUpdate: 42,
  LayerCoordination: 50,
  PolicyDistribution: 51,
  ComplianceReport: 52,
  ProofSubmission: 60,
  TokenClaim: 61,
  StatusSync: 62,
  Ack: 70,
} as const)

export type MessageTypeName = keyof typeof MessageType
export type MessageTypeCode = typeof MessageType[MessageTypeName]

const SNAKE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(MessageType).map(([name, code]) => [code, name.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase()])
)

/** The snake_case name of a type code, as used in bridge topics (`status_update`), or undefined. */
export function messageTypeName (code: number): string | undefined {
  return SNAKE_NAMES.get(code)
}

/** True when code is a message type of §5. */
export function isMessageType (code: unknown): code is MessageTypeCode {
  return typeof code === 'number' && SNAKE_NAMES.has(code)
}

/** Which way a payload travels: 'up' on a device's up topic (the hub reads it), 'down' on its down topic (the device reads it). */
export type Direction = 'up' | 'down'

/** Types a device (or app) may publish on its `up` topic. */
export const UP_TYPES: ReadonlySet<number> = new Set([
  MessageType.Heartbeat,
  MessageType.StatusUpdate,
  MessageType.TokenTransfer,
  MessageType.AuthenticationRequest,
  MessageType.SecurityAlert,
  MessageType.StateUpdate,
  MessageType.ProofSubmission,
  MessageType.TokenClaim,
  MessageType.StatusSync,
])

/** Types the hub or a service may publish on a device's `down` topic. */
export const DOWN_TYPES: ReadonlySet<number> = new Set([
  MessageType.ConfigurationUpdate,
  MessageType.MiningReward,
  MessageType.AuthenticationResponse,
  MessageType.StateUpdate,
  MessageType.Ack,
])

/** Types that must travel as COSE_Sign1 whatever their priority (§4). */
export const MUST_SIGN_TYPES: ReadonlySet<number> = new Set([
  MessageType.ProofSubmission,
  MessageType.TokenTransfer,
  MessageType.SecurityAlert,
])

/** Rejection reasons and their Ack codes (§5). Feature-level codes start at FEATURE_CODE_MIN. */
export const REJECT_CODES = Object.freeze({
  decode: 1,
  version: 2,
  type: 3,
  src: 4,
  skew: 5,
  replay: 6,
  signature: 7,
  unsigned: 8,
  too_large: 9,
  body: 10,
  acl: 11,
} as const)

export type RejectReason = keyof typeof REJECT_CODES

/** The first code a feature may use for its own rejections (a refused claim, say). */
export const FEATURE_CODE_MIN = 100

/** True when value is one of the rejection reasons of §5. */
export function isRejectReason (value: unknown): value is RejectReason {
  return typeof value === 'string' && Object.hasOwn(REJECT_CODES, value)
}

/** Envelope map keys (§4). */
export const EnvelopeKey = Object.freeze({
  v: 0,
  type: 1,
  id: 2,
  src: 3,
  dst: 4,
  ts: 5,
  prio: 6,
  body: 7,
  enc: 9,
  ack: 13,
} as const)

/** Bridge record map keys (§6). */
export const BridgeKey = Object.freeze({
  v: 0,
  type: 1,
  src: 3,
  receivedAt: 5,
  body: 7,
  hubId: 10,
  signed: 11,
  raw: 12,
} as const)

/** Priorities (§4): 0 critical, 1 high, 2 normal, 3 low. */
export const PRIO_DEFAULT = 2
export const PRIO_MAX = 3

/** Body encodings (§4, key 9). */
export const ENC_PLAIN = 0
export const ENC_DEFLATE = 1

/** Envelope ids and COSE kids are 16 bytes; CONNECT nonces too. */
export const ID_BYTES = 16

/** A batch carries 1 to this many envelopes (§4). */
export const BATCH_ITEMS_MAX = 256

/** COSE (RFC 9052): the COSE_Sign1 tag, the EdDSA alg and the header labels we use. */
export const COSE_SIGN1_TAG = 18
export const COSE_ALG_EDDSA = -8
export const COSE_LABEL_ALG = 1
export const COSE_LABEL_KID = 4

/**
 * Nesting bound for one CBOR item from the wire (containers and tags each count one). A
 * batch (1) of envelopes (1) with bodies nested BODY_DEPTH_MAX deep stays within it.
 */
export const CBOR_DEPTH_MAX = 32

/** Nesting bound for a body (and any other envelope field value). */
export const BODY_DEPTH_MAX = 24
