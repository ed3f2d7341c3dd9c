/**
 * The SDK's typed errors, in one place. Every error a publish or connect promise can
 * reject with is one of these, so callers can branch with `instanceof` (or on `name`,
 * which survives bundlers that duplicate classes).
 */

/** Base class of every error the SDK throws or rejects with. */
export class MetanodeSdkError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'MetanodeSdkError'
  }
}

/**
 * The hub answered a publish with a rejecting Ack (protocol-v1 §5, §7). `code` and
 * `reason` are the Ack's: 1 decode, 2 version, 3 type, 4 src, 5 skew, 7 signature,
 * 8 unsigned, 9 too_large, 10 body, 11 acl; 100 and up are the hub's feature-level reasons.
 * A `replay` Ack (6) never becomes an AckError: it means the message was delivered before.
 */
export class AckError extends MetanodeSdkError {
  readonly code: number
  readonly reason: string
  /** The Ack's `result`, when the hub sent one with the rejection. */
  readonly result: unknown

  constructor (code: number, reason: string, result?: unknown, detail?: string) {
    super(`the hub rejected the message: ${reason || 'unknown reason'} (code ${code})${detail ? `: ${detail}` : ''}`)
    this.name = 'AckError'
    this.code = code
    this.reason = reason
    this.result = result
  }
}

/**
 * No answer in time. For a publish, the envelope was on the wire for `timeoutMs` (time
 * spent offline does not count) without an Ack: it may or may not have been accepted.
 * Publishing it again with the same `id` option is safe: the hub answers `replay` if it
 * had accepted it.
 */
export class TimeoutError extends MetanodeSdkError {
  readonly timeoutMs: number

  constructor (message: string, timeoutMs: number) {
    super(message)
    this.name = 'TimeoutError'
    this.timeoutMs = timeoutMs
  }
}

/** The client was closed while the operation was pending, or used after `close()`. */
export class ClosedError extends MetanodeSdkError {
  constructor (message = 'the client is closed') {
    super(message)
    this.name = 'ClosedError'
  }
}

/**
 * The offline queue was full. With the default policy (`'reject'`) the new publish is
 * refused; with `'drop-oldest'` the oldest queued publish of the lowest priority is
 * rejected with this error to make room (`dropped` is then true).
 */
export class QueueFullError extends MetanodeSdkError {
  readonly dropped: boolean

  constructor (queueMax: number, dropped: boolean) {
    super(dropped
      ? `dropped from the offline queue to make room for a newer message (offlineQueueMax ${queueMax})`
      : `the offline queue is full (offlineQueueMax ${queueMax}); the message was not queued`)
    this.name = 'QueueFullError'
    this.dropped = dropped
  }
}

/** An encoded envelope is larger than the hub accepts, which would drop it without an Ack. */
export class PayloadTooLargeError extends MetanodeSdkError {
  readonly sizeBytes: number
  readonly payloadBytesMax: number

  constructor (sizeBytes: number, payloadBytesMax: number) {
    super(`the encoded message is ${sizeBytes} bytes, over payloadBytesMax ${payloadBytesMax}; compress it or split it`)
    this.name = 'PayloadTooLargeError'
    this.sizeBytes = sizeBytes
    this.payloadBytesMax = payloadBytesMax
  }
}

/**
 * The hub refused the MQTT CONNECT (protocol-v1 §2). `returnCode` 4: unknown principal,
 * bad signature or clock skew; 5: not authorised (revoked, or client id ≠ username).
 */
export class ConnectError extends MetanodeSdkError {
  readonly returnCode: number | null

  constructor (message: string, returnCode: number | null, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConnectError'
    this.returnCode = returnCode
  }
}

/** A key, key file or exported key pair is malformed or inconsistent. */
export class KeyError extends MetanodeSdkError {
  constructor (message: string) {
    super(message)
    this.name = 'KeyError'
  }
}

/** The caller passed something the SDK cannot use (a bad option, type or body). */
export class ArgumentError extends MetanodeSdkError {
  constructor (message: string) {
    super(message)
    this.name = 'ArgumentError'
  }
}

/** The hub's HTTP API answered with an error status; `code` is its MN_ERR_* code. */
export class HttpError extends MetanodeSdkError {
  readonly status: number
  readonly code: string

  constructor (status: number, code: string, message: string) {
    super(`HTTP ${status} ${code}: ${message}`)
    this.name = 'HttpError'
    this.status = status
    this.code = code
  }
}

/** Why the hub refuses a ZK claim (docs/zklock.md §11), plus its HTTP rate limit. */
export type ZkClaimRefusal = 'bad_proof' | 'unknown_root' | 'stale_epoch' | 'double_claim' | 'busy' | 'rate_limited'

/**
 * A ZK claim was refused. `fromHub` is false when the SDK refused it itself before proving
 * (an epoch other than the hub's current one, or a nullifier the hub has already recorded);
 * then `status` is the one the hub would have answered with. `retryAfterSeconds` comes with
 * `busy` and `rate_limited`: the hub's Retry-After.
 */
export class ZkClaimRefusedError extends MetanodeSdkError {
  readonly reason: ZkClaimRefusal
  readonly status: number
  /** The hub's MN_ERR_* code. */
  readonly code: string
  readonly fromHub: boolean
  readonly retryAfterSeconds?: number

  constructor (reason: ZkClaimRefusal, message: string, options: { status: number, code: string, fromHub: boolean, retryAfterSeconds?: number }) {
    super(`the claim was refused: ${reason}: ${message}`)
    this.name = 'ZkClaimRefusedError'
    this.reason = reason
    this.status = options.status
    this.code = options.code
    this.fromHub = options.fromHub
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds
  }
}

/**
 * The identity tree the hub serves is not usable: its leaves do not hash to the root it
 * reports, that root is not one it accepts, a page is malformed, or it is over the bound.
 */
export class ZkTreeError extends MetanodeSdkError {
  constructor (message: string) {
    super(message)
    this.name = 'ZkTreeError'
  }
}

/**
 * This identity's commitment is not in the hub's tree (not added yet, or another secret
 * than the one enrolled): nothing can be proved, and nothing was sent.
 */
export class ZkNotInTreeError extends MetanodeSdkError {
  /** The commitment looked for (public: it is the leaf the device would have). */
  readonly commitment: string
  readonly leafCount: number

  constructor (commitment: string, leafCount: number) {
    super(`this identity's commitment is not among the hub's ${leafCount} leaves: add it first (POST /v1/zk/commitments), or load the secret that was enrolled`)
    this.name = 'ZkNotInTreeError'
    this.commitment = commitment
    this.leafCount = leafCount
  }
}
