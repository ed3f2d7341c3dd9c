/**
 * Waits for a device's PUBACK of one message the hub sent it: the device's MQTT client has
 * the message (protocol v1 has no application-level receipt for `down` messages).
 *
 * Aedes 1.2 reports PUBACKs of clean sessions without the packet they acknowledge, so the
 * hub picks the packet identifier itself: a QoSPacket keeps a messageId it is given, and
 * the hub hands one over in authorizeForward, taken from the client's own counter exactly
 * as Aedes would, then watches that client's PUBACKs for it.
 *
 * In a cluster the device may be connected to another process, and the payload reaches it
 * through Redis, so its identity is lost. There the wait is keyed by the client and the
 * payload's SHA-256 instead: every process watches the PUBACKs of the `down` messages it
 * forwards and announces each to the fleet (DeliveryAnnouncements), and the process that
 * waits hears it, wherever the device acknowledged.
 */
import { createHash } from 'node:crypto'
import type { Client, AedesPublishPacket } from 'aedes'

/** The fleet's channel for delivery receipts (src/cluster/fleet.ts). */
export interface DeliveryAnnouncements {
  /** Tells every process, this one included, that clientId acknowledged the payload with this digest. */
  announce (clientId: string, digest: string): void
  /** Called on this process for every announcement. */
  subscribe (listener: (clientId: string, digest: string) => void): void
}

interface Awaited {
  clientId: string
  done: (delivered: boolean) => void
}

type CountingClient = Client & { _nextId: number }

export class DeliveryReceipts {
  /** Payloads the hub is waiting on, by identity: Aedes copies packets but not payloads. */
  readonly #expected = new WeakMap<object, Awaited>()
  /** Cluster mode: what the hub is waiting on, by `clientId:digest`. */
  readonly #expectedInFleet = new Map<string, (delivered: boolean) => void>()
  /** Per client: packet identifiers handed out and what to call on their PUBACK. */
  readonly #pending = new WeakMap<Client, Map<number, (delivered: boolean) => void>>()
  readonly #fleet: DeliveryAnnouncements | undefined

  constructor (fleet?: DeliveryAnnouncements) {
    this.#fleet = fleet
    fleet?.subscribe((clientId, digest) => this.#expectedInFleet.get(`${clientId}:${digest}`)?.(true))
  }

  /** Resolves true on the device's PUBACK of this payload, false after timeoutMs. */
  expect (payload: Buffer, clientId: string, timeoutMs: number): Promise<boolean> {
    return new Promise(resolve => {
      const key = this.#fleet ? `${clientId}:${digestOf(payload)}` : null
      const timer = setTimeout(() => finish(false), timeoutMs)
      const finish = (delivered: boolean): void => {
        clearTimeout(timer)
        if (key === null) this.#expected.delete(payload)
        else this.#expectedInFleet.delete(key)
        resolve(delivered)
      }
      if (key === null) this.#expected.set(payload, { clientId, done: finish })
      else this.#expectedInFleet.set(key, finish)
    })
  }

  /** From authorizeForward: gives a watched message its packet identifier. */
  forward (client: Client, packet: AedesPublishPacket): AedesPublishPacket {
    if (packet.qos === 0) return packet
    if (this.#fleet) {
      // Any process may be the one whose client acknowledges: watch every `down` message.
      if (packet.topic !== `mn/v1/d/${client.id}/down`) return packet
      const fleet = this.#fleet
      const digest = digestOf(packet.payload as Buffer)
      return this.#watch(client, packet, () => fleet.announce(client.id, digest))
    }
    const awaited = this.#expected.get(packet.payload as object)
    if (!awaited || awaited.clientId !== client.id) return packet
    return this.#watch(client, packet, awaited.done)
  }

  #watch (client: Client, packet: AedesPublishPacket, onAcknowledged: (delivered: boolean) => void): AedesPublishPacket {
    const counting = client as CountingClient
    const messageId = counting._nextId
    counting._nextId = messageId >= 65535 ? 1 : messageId + 1
    let pending = this.#pending.get(client)
    if (!pending) {
      pending = new Map()
      this.#pending.set(client, pending)
    }
    pending.set(messageId, onAcknowledged)
    return { ...packet, messageId }
  }

  /** From the client's packet stream: a PUBACK (or PUBCOMP) ends the wait for its identifier. */
  acknowledged (client: Client, messageId: number): void {
    const pending = this.#pending.get(client)
    const done = pending?.get(messageId)
    if (!done) return
    pending!.delete(messageId)
    done(true)
  }
}

function digestOf (payload: Buffer | string): string {
  return createHash('sha256').update(payload).digest('hex')
}
