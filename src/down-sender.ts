/**
 * How a backend's message reaches a device through the HTTP API: an envelope from the hub's
 * own principal id on the device's `down` topic, signed by the hub when it is urgent (prio
 * 0 or 1, which devices may insist on) or when the hub signs everything it sends.
 */
import { randomBytes } from 'node:crypto'
import { encodeEnvelope, signEnvelope, idBytes, downTopic } from './protocol/index.js'
import { NotFoundError, ConflictError } from './errors.js'
import type { MetanodeBroker } from '../broker/index.js'
import type { PrincipalStore } from './store/index.js'
import type { NodeKey } from './node-key.js'
import type { SendToDevice } from './http/messages-route.js'

export interface DownSenderOptions {
  principals: PrincipalStore
  nodeKey: NodeKey
  broker: MetanodeBroker
  /** Sign every message, not only urgent ones (the hub's signAcks setting). */
  signAll: boolean
  /** Whether the device is connected anywhere in the fleet (cluster mode); this process's broker when absent. */
  isOnline?: (deviceId: string) => Promise<boolean>
}

export function createDownSender (options: DownSenderOptions): SendToDevice {
  const { principals, nodeKey, broker } = options
  return async (deviceId, message, waitMs) => {
    const device = await principals.get(deviceId)
    if (!device || device.role !== 'device') throw new NotFoundError(`no device with id ${JSON.stringify(deviceId)}`)
    if (device.revoked !== null) throw new ConflictError('that device is revoked')
    const id = randomBytes(16)
    const envelope = encodeEnvelope({ type: message.type, src: nodeKey.id, dst: deviceId, id, body: message.body, prio: message.prio })
    const signed = options.signAll || message.prio <= 1
    const payload = Buffer.from(signed ? signEnvelope(envelope, idBytes(nodeKey.id), nodeKey.sign) : envelope)
    const online = options.isOnline ? await options.isOnline(deviceId) : broker.isOnline(deviceId)
    const topic = downTopic(deviceId)
    if (waitMs === undefined) {
      await broker.publish(topic, payload)
      return { id: id.toString('hex'), online }
    }
    return { id: id.toString('hex'), online, delivered: await broker.publishAndWait(deviceId, topic, payload, waitMs) }
  }
}
