/**
 * Message types and body shapes as the SDK's callers see them (protocol-v1 §5), so that
 * `publish('StatusUpdate', body)` and `onStateDelta(({ delta, version }) => ...)` are
 * checked by the compiler. Codes come from src/protocol; only the TypeScript shapes live
 * here.
 */
import type { AckBody } from '../src/protocol/index.js'
import { MessageType } from '../src/protocol/index.js'
import { ArgumentError } from './errors.js'

/** Telemetry readings, a heartbeat's fields, a configuration: text keys, any CBOR values. */
export type Fields = Record<string, unknown>

/** snarkjs Groth16 JSON shapes (ProofSubmission, TokenClaim). */
export interface ProofBody {
  circuit: string
  proof: Fields
  publicSignals: string[]
}

/** Bodies of the types a device sends (device → hub). */
export interface UpBodies {
  Heartbeat: Fields | undefined
  StatusUpdate: Fields
  TokenTransfer: unknown
  AuthenticationRequest: unknown
  SecurityAlert: { kind: string, detail: string | Fields }
  StateUpdate: { reported: Fields }
  ProofSubmission: ProofBody
  TokenClaim: ProofBody
  StatusSync: { version: number }
}

/** Bodies of the types a device receives on its `down` topic. */
export interface DownBodies {
  ConfigurationUpdate: Fields
  MiningReward: unknown
  AuthenticationResponse: unknown
  StateUpdate: StateDelta
  Ack: AckBody
}

export interface StateDelta {
  delta: Fields
  version: number
}

/** The Ack body on the wire (type 70). */
export type { AckBody }

/**
 * What a publish with `ack` resolves to. A `replay` Ack counts as delivered (protocol-v1
 * §4: the hub had accepted this id before and its first Ack was lost); `replayed` is then
 * true and `result` undefined, since the first Ack's result is gone.
 */
export interface Ack {
  ok: true
  code: 0
  reason: ''
  result: unknown
  replayed: boolean
}

export type UpTypeName = keyof UpBodies
export type DownTypeName = keyof DownBodies
export type MessageTypeName = keyof typeof MessageType

/** Resolves a type given by name ('StatusUpdate') or code (1) to its code. */
export function typeCode (type: MessageTypeName | number): number {
  if (typeof type === 'number') return type
  const code = (MessageType as Record<string, number>)[type]
  if (code === undefined) throw new ArgumentError(`unknown message type "${String(type)}"`)
  return code
}

/** The PascalCase name of a code, for messages in errors and logs. */
export function typeName (code: number): string {
  for (const [name, value] of Object.entries(MessageType)) if (value === code) return name
  return `type ${code}`
}
