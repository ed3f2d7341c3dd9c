import { REJECT_CODES, type RejectReason } from './constants.js'

/**
 * A protocol-level failure of bytes from the wire (never a caller bug: those are
 * TypeErrors). Carries the rejection reason and its Ack code so that callers can answer.
 */
export class ProtocolError extends Error {
  readonly reason: RejectReason
  readonly code: number

  constructor (reason: RejectReason, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ProtocolError'
    this.reason = reason
    this.code = REJECT_CODES[reason]
  }
}
