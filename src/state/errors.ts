/**
 * The state feature's errors and its Ack codes (docs/protocol.md §14.4). The HTTP routes
 * send the coded errors as they are; the MQTT handlers turn them into refused Acks.
 */
import { ConflictError, NotFoundError } from '../errors.js'

/** Feature-level Ack codes of state messages (protocol-v1 §5: features number theirs from 101). */
export const STATE_ACK_CODES = Object.freeze({
  /** The sender is not a device: only devices have state documents. */
  not_a_device: 101,
  /** The change would make the document larger than state.documentBytesMax. */
  state_too_large: 102,
  /** A value JSON cannot carry (bytes, a map with non-text keys, NaN, a bignum), a "__proto__" key, or nesting deeper than state.depthMax. */
  state_invalid: 103,
} as const)

export type StateAckReason = keyof typeof STATE_ACK_CODES

/** A PATCH's expected version is not the document's: 409, with the current version. */
export class StateVersionConflictError extends ConflictError {
  constructor (readonly deviceId: string, readonly currentVersion: number, readonly expectedVersion: number) {
    super(`the state of ${deviceId} is at version ${currentVersion}, not ${expectedVersion}`)
    this.name = 'StateVersionConflictError'
  }
}

/** The principal exists but is a service or node: a 404, since it has no state document. */
export class NotADeviceError extends NotFoundError {
  constructor (readonly principalId: string, readonly role: string) {
    super(`principal ${principalId} is a ${role}, not a device: only devices have state documents`)
    this.name = 'NotADeviceError'
  }
}
