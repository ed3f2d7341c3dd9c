/**
 * The device uplink of protocol-v1 §4: size → decode → version → type → src → skew →
 * unsigned → signature → replay → body, then the bridge record of §6 and, when asked,
 * the Ack of §5. Every item of a batch is judged on its own.
 */
import {
  parsePayload, checkEnvelope, validateBody, encodeBridgeRecord, encodeAck, messageTypeName, bridgeTopic, downTopic,
  REJECT_CODES, toHex, type ParsedItem, type RejectReason, type ReplayGuard, type Signer, type Envelope,
} from '../src/protocol/index.js'
import type { ProtocolLimits } from '../src/config.js'
import { verifyEd25519, type KnownPrincipal } from '../src/auth/principal-keys.js'
import type { Logger } from 'pino'
import type { FleetIds } from '../src/cluster/fleet-ids.js'
import type { InOrder } from './in-order.js'
import type { RejectionLog } from './rejections.js'
import type { BrokerMetrics } from './metrics.js'

/** A message that passed every check, handed to its feature handler. */
export interface AcceptedMessage {
  principal: KnownPrincipal
  envelope: Envelope
  raw: Uint8Array
  signed: boolean
  receivedAt: number
}

/**
 * A feature's handler for one message type (state documents, claims, ...). What it returns
 * goes into the Ack's `result`; a FeatureRejection becomes a refused Ack with its code.
 */
export type MessageHandler = (message: AcceptedMessage) => Promise<unknown> | unknown

/**
 * A handler with its bridge timing. `before` (the default, and what a bare MessageHandler
 * gets): the message is bridged as soon as it passed the checks of §4, then handled.
 * `accepted`: handled first, bridged only if the handler accepted it (a proof is bridged
 * once it verified). `never`: the handler publishes what services may see itself (an
 * anonymous claim is bridged without the device's id).
 */
export interface FeatureHandler {
  handle: MessageHandler
  bridge: 'before' | 'accepted' | 'never'
}

export class FeatureRejection extends Error {
  constructor (readonly code: number, readonly reason: string, message?: string) {
    super(message ?? reason)
    this.name = 'FeatureRejection'
  }
}

export interface UpPipelineOptions {
  hubId: string
  limits: ProtocolLimits
  replay: ReplayGuard
  /**
   * Cluster mode: the fleet's record of ids seen (src/cluster/fleet.ts), asked once per
   * payload after the local guard, so that an id replayed to another process is refused too.
   */
  fleetIds?: FleetIds
  /** Publishes at QoS 1, not retained; resolves once the broker has taken it. */
  publish: (topic: string, payload: Buffer) => Promise<void>
  rejections: RejectionLog
  metrics: BrokerMetrics
  /** Signs Acks with the hub's key when set. */
  signAck?: Signer
  handlers: ReadonlyMap<number, MessageHandler | FeatureHandler>
  log: Logger
}

interface Checked {
  item: ParsedItem
  reason: RejectReason | null
}

export class UpPipeline {
  readonly #o: UpPipelineOptions
  readonly #handlers: ReadonlyMap<number, FeatureHandler>

  constructor (options: UpPipelineOptions) {
    this.#o = options
    this.#handlers = new Map([...options.handlers].map(([type, h]) => [type, typeof h === 'function' ? { handle: h, bridge: 'before' } : h]))
  }

  /**
   * Handles one `up` payload. Resolves with the number of rejected items once every
   * accepted item is bridged and every asked-for Ack is published.
   */
  async process (principal: KnownPrincipal, payload: Buffer, order: InOrder): Promise<number> {
    const receivedAt = Date.now()
    const { limits } = this.#o
    if (payload.length > limits.payloadBytesMax) {
      this.#o.rejections.record('too_large', principal.id)
      return order.run(Promise.resolve(1), n => n)
    }
    const parsed = parsePayload(payload, { payloadBytesMax: limits.payloadBytesMax, direction: 'up' })
    if (!parsed.ok) {
      this.#o.rejections.record(parsed.reason, principal.id)
      return order.run(Promise.resolve(1), n => n)
    }
    const checks = Promise.all(parsed.items.map(item => this.#checkItem(principal, item, receivedAt)))
    return order.run(checks, checked => this.#commit(principal, checked, receivedAt))
  }

  /** The checks that need no shared state: run concurrently, in any order. */
  async #checkItem (principal: KnownPrincipal, item: ParsedItem, nowMs: number): Promise<Checked> {
    if (item.reason) return { item, reason: item.reason }
    const reason = checkEnvelope(item, { principalId: principal.id, nowMs, skewMs: this.#o.limits.skewMs })
    if (reason) return { item, reason }
    if (item.cose && !(await verifyEd25519(principal.key, item.cose.sigInput, item.cose.signature))) {
      return { item, reason: 'signature' }
    }
    return { item, reason: null }
  }

  /** Replay and body checks, bridging and Acks: in arrival order, one payload at a time. */
  async #commit (principal: KnownPrincipal, checked: Checked[], receivedAt: number): Promise<number> {
    const { replay, metrics } = this.#o
    const reasons = checked.map(({ item, reason }) => {
      const envelope = item.envelope
      if (reason || !envelope) return reason ?? 'decode'
      // The guard takes the id's bytes as they are: the same id as their hex, and cheaper.
      if (replay.has(principal.id, envelope.id)) return 'replay'
      if (!validateBody(envelope.type, envelope.body, 'up')) return 'body'
      // In cluster mode the id is remembered once the fleet has said it is new (below), so
      // that an id the fleet could not judge is not spent.
      if (!this.#o.fleetIds) replay.add(principal.id, envelope.id, receivedAt)
      return null
    })
    if (this.#o.fleetIds) {
      await this.#checkFleet(principal, checked, reasons)
      reasons.forEach((reason, i) => { if (reason === null) replay.add(principal.id, checked[i].item.envelope!.id, receivedAt) })
    }
    const pending: Promise<void>[] = []
    let rejected = 0
    checked.forEach(({ item }, i) => {
      const why = reasons[i]
      const envelope = item.envelope
      if (why !== null || !envelope) {
        rejected += 1
        if (why === undefined) return // the fleet could not be asked: no verdict, no Ack
        this.#o.rejections.record(why ?? 'decode', principal.id)
        // ackRe is there whenever the sender asked for an Ack and its id could be read.
        if (item.ackRe) pending.push(this.#sendAck(principal, item.ackRe, { code: REJECT_CODES[why ?? 'decode'], reason: why ?? 'decode' }))
        return
      }
      metrics.accepted.inc({ type: messageTypeName(envelope.type) ?? String(envelope.type) })
      pending.push(this.#accept({ principal, envelope, raw: item.raw, signed: item.signed, receivedAt }, item.bodyBytes))
    })
    await Promise.all(pending)
    metrics.pipelineSeconds.observe((Date.now() - receivedAt) / 1000)
    return rejected
  }

  /**
   * Cluster mode: asks the fleet about the ids the local guard let through, marking repeats
   * `replay`. When Redis cannot answer, those items get no verdict (undefined): neither
   * bridged nor answered, so the sender's QoS 1 retry or Ack timeout sends them again.
   */
  async #checkFleet (principal: KnownPrincipal, checked: Checked[], reasons: Array<RejectReason | null | undefined>): Promise<void> {
    const open = reasons.flatMap((reason, i) => reason === null ? [i] : [])
    if (open.length === 0) return
    try {
      const fresh = await this.#o.fleetIds!.firstSeen(open.map(i => [principal.id, toHex(checked[i].item.envelope!.id)] as const))
      open.forEach((i, n) => { if (!fresh[n]) reasons[i] = 'replay' })
    } catch (err) {
      this.#o.log.error({ err, principalId: principal.id }, 'the fleet\'s replay record could not be reached; messages left unanswered')
      for (const i of open) reasons[i] = undefined
    }
  }

  /**
   * bodyBytes: the body's bytes as received, when parsePayload found that they can stand in
   * the record as they are (ParsedItem.bodyBytes); the record is then spliced, not re-encoded.
   */
  async #accept (message: AcceptedMessage, bodyBytes: Uint8Array | undefined): Promise<void> {
    const { envelope, principal } = message
    const handler = this.#handlers.get(envelope.type)
    const bridge = handler?.bridge ?? 'before'
    // The device's Ack goes only after the bridge record was taken by the broker, so an
    // acknowledged message has always reached the bridge (shared/baselines.md).
    if (bridge === 'before') await this.#bridge(message, bodyBytes)
    let outcome: { code: number, reason: string, result?: unknown } = { code: 0, reason: '' }
    if (handler) {
      try {
        outcome.result = await handler.handle(message)
      } catch (err) {
        if (err instanceof FeatureRejection) {
          outcome = { code: err.code, reason: err.reason }
        } else {
          this.#o.log.error({ err, type: envelope.type, principalId: principal.id }, 'message handler failed')
          outcome = { code: 100, reason: 'internal' }
        }
      }
    }
    if (bridge === 'accepted' && outcome.code === 0) await this.#bridge(message, bodyBytes)
    if (envelope.ack) await this.#sendAck(principal, envelope.id, outcome)
  }

  #bridge (message: AcceptedMessage, bodyBytes: Uint8Array | undefined): Promise<void> {
    const { envelope, principal } = message
    const record = encodeBridgeRecord({
      type: envelope.type,
      src: principal.id,
      receivedAt: message.receivedAt,
      body: envelope.body,
      bodyBytes,
      hubId: this.#o.hubId,
      signed: message.signed,
      raw: message.raw,
    }, Buffer.allocUnsafe) // written whole into Node's buffer pool: cheaper than an ArrayBuffer each
    return this.#o.publish(bridgeTopic(envelope.type, principal.id), asBuffer(record))
  }

  #sendAck (principal: KnownPrincipal, re: Uint8Array, outcome: { code: number, reason: string, result?: unknown }): Promise<void> {
    const ack = encodeAck({
      re,
      hubId: this.#o.hubId,
      dst: principal.id,
      code: outcome.code,
      reason: outcome.reason,
      result: outcome.result,
      sign: this.#o.signAck,
    })
    return this.#o.publish(downTopic(principal.id), asBuffer(ack))
  }
}

/** A Buffer over the same memory: MQTT wants Buffers, and copying each record costs. */
function asBuffer (bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
