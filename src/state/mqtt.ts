/**
 * The state flows over MQTT (docs/protocol.md §14.2): the broker's handlers for
 * StateUpdate (a device reports) and StatusSync (a device asks for its document), and the
 * hooks that send a device its pending delta when it comes back.
 *
 * A device comes back in two steps, and the delta is sent at both: when its session is
 * ready (a persistent session, clean session off, is subscribed already, so it arrives),
 * and when it subscribes to its `down` topic (a clean session subscribes only after
 * CONNACK: anything published before that would reach no one). A device that is both may
 * get the same delta twice; deltas are whole and versioned, so applying one again is a no-op.
 */
import type { Logger } from 'pino'
import { FeatureRejection, type MessageHandler } from '../../broker/index.js'
import { BadRequestError, NotFoundError, PayloadTooLargeError } from '../errors.js'
import { parseDeviceTopic, MessageType } from '../protocol/index.js'
import { STATE_ACK_CODES, type StateAckReason } from './errors.js'
import type { StateService } from './service.js'

export interface StateMqttOptions {
  state: StateService
  log: Logger
}

export interface StateMqtt {
  /** For BrokerOptions.handlers: StateUpdate (41) and StatusSync (62). */
  readonly handlers: ReadonlyMap<number, MessageHandler>
  /** For BrokerOptions.onPrincipalReady. */
  onPrincipalReady (principal: { id: string, role: string }): void
  /** Call with every granted SUBSCRIBE (Aedes's `subscribe` event: its subscriptions and client id). */
  onSubscribed (clientId: string, subscriptions: ReadonlyArray<{ topic: string, qos: number }>): void
}

/** Aedes marks a refused subscription with this granted QoS. */
const SUBSCRIPTION_REFUSED = 128

export function createStateMqtt (options: StateMqttOptions): StateMqtt {
  const { state, log } = options

  /** Runs a state operation for a message, turning the feature's errors into refused Acks. */
  async function forDevice<T> (message: Parameters<MessageHandler>[0], run: (deviceId: string) => Promise<T>): Promise<T> {
    const { principal } = message
    if (principal.role !== 'device') throw refusal('not_a_device', `a ${principal.role} has no state document`)
    try {
      return await run(principal.id)
    } catch (err) {
      if (err instanceof NotFoundError) throw refusal('not_a_device', err.message)
      if (err instanceof PayloadTooLargeError) throw refusal('state_too_large', err.message)
      if (err instanceof BadRequestError) throw refusal('state_invalid', err.message)
      // The pipeline answers anything else with `internal` (100) and does not log it.
      log.error({ err, deviceId: principal.id, type: message.envelope.type }, 'state message failed')
      throw err
    }
  }

  /** Never rejects: what goes wrong is logged, since the broker's hooks do not wait for it. */
  async function sendPending (deviceId: string, why: string): Promise<void> {
    try {
      if (await state.sendDelta(deviceId)) log.debug({ deviceId, why }, 'pending state delta sent')
    } catch (err) {
      log.error({ err, deviceId }, 'could not read the pending state delta')
    }
  }

  const handlers = new Map<number, MessageHandler>([
    // Body checked by the pipeline (§5): {"reported": map}. Ack result: {"version"}.
    [MessageType.StateUpdate, message => forDevice(message, async deviceId => {
      const { reported } = message.envelope.body as { reported: unknown }
      return { version: (await state.report(deviceId, reported)).version }
    })],
    // Body {"version": uint}, the version the device last saw; this hub answers with the
    // whole document whatever it is. With an Ack asked for, the document is its result;
    // without, the device is sent its current delta (empty or not) as a StateUpdate.
    [MessageType.StatusSync, message => forDevice(message, async deviceId => {
      if (message.envelope.ack) return await state.get(deviceId)
      await state.sendDelta(deviceId, { evenIfEmpty: true })
      return undefined
    })],
  ])

  return {
    handlers,
    onPrincipalReady (principal) {
      if (principal.role === 'device') void sendPending(principal.id, 'session ready')
    },
    onSubscribed (clientId, subscriptions) {
      // Only a device holds its down topic: §3 refuses it to anyone else (granted 128). Any
      // client id may come here (anonymous ones too), so it is parsed, never assumed.
      const granted = subscriptions.some(s => {
        const topic = s.qos === SUBSCRIPTION_REFUSED ? null : parseDeviceTopic(s.topic)
        return topic !== null && topic.direction === 'down' && topic.id === clientId
      })
      if (granted) void sendPending(clientId, 'subscribed')
    },
  }
}

function refusal (reason: StateAckReason, message: string): FeatureRejection {
  return new FeatureRejection(STATE_ACK_CODES[reason], reason, message)
}
