/**
 * Waits for a device's PUBACK of one message the hub sent it: the device's MQTT client has
 * the message (protocol v1 has no application-level receipt for `down` messages).
 *
 * Aedes 1.2 reports PUBACKs of clean sessions without the packet they acknowledge, so the
 * hub picks the packet identifier itself: a QoSPacket keeps a messageId it is given, and
 * the hub hands one over in authorizeForward, taken from the client's own counter exactly
 * as Aedes would, then watches that client's PUBACKs for it.
 */
import type { Client, AedesPublishPacket } from 'aedes'

interface Awaited {
  clientId: string
  done: (delivered: boolean) => void
}

type CountingClient = Client & { _nextId: number }

export class DeliveryReceipts {
  /** Payloads the hub is waiting on, by identity: Aedes copies packets but not payloads. */
  readonly #expected = new WeakMap<object, Awaited>()
  /** Per client: packet identifiers handed out and what to call on their PUBACK. */
  readonly #pending = new WeakMap<Client, Map<number, (delivered: boolean) => void>>()

  /** Resolves true on the device's PUBACK of this payload, false after timeoutMs. */
  expect (payload: Buffer, clientId: string, timeoutMs: number): Promise<boolean> {
    return new Promise(resolve => {
      const timer = setTimeout(() => finish(false), timeoutMs)
      const finish = (delivered: boolean): void => {
        clearTimeout(timer)
        this.#expected.delete(payload)
        resolve(delivered)
      }
      this.#expected.set(payload, { clientId, done: finish })
    })
  }

  /** From authorizeForward: gives a watched message its packet identifier. */
  forward (client: Client, packet: AedesPublishPacket): AedesPublishPacket {
    const awaited = packet.qos > 0 ? this.#expected.get(packet.payload as object) : undefined
    if (!awaited || awaited.clientId !== client.id) return packet
    const counting = client as CountingClient
    const messageId = counting._nextId
    counting._nextId = messageId >= 65535 ? 1 : messageId + 1
    let pending = this.#pending.get(client)
    if (!pending) {
      pending = new Map()
      this.#pending.set(client, pending)
    }
    pending.set(messageId, awaited.done)
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
