/**
 * A raw MQTT connection for the cases mqtt.js refuses to produce (an empty client id with
 * clean session off, a second CONNECT, a silent client): packets written with mqtt-packet.
 */
import { connect as netConnect, type Socket } from 'node:net'
import { once } from 'node:events'
import type { TestContext } from 'node:test'
import mqttPacket, { type Packet } from 'mqtt-packet'

export interface RawClient {
  socket: Socket
  send (packet: Record<string, unknown> | Buffer): void
  next (timeoutMs?: number): Promise<Packet>
  closed: Promise<void>
}

export async function rawConnection (t: Pick<TestContext, 'after'>, port: number): Promise<RawClient> {
  const socket = netConnect(port, '127.0.0.1')
  t.after(() => { socket.destroy() })
  await once(socket, 'connect')
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const packets: Packet[] = []
  const waiters: Array<() => void> = []
  parser.on('packet', packet => {
    packets.push(packet)
    for (const wake of waiters.splice(0)) wake()
  })
  socket.on('data', chunk => parser.parse(chunk))
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  return {
    socket,
    send (packet) {
      socket.write(Buffer.isBuffer(packet) ? packet : mqttPacket.generate(packet as unknown as Packet))
    },
    async next (timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs
      while (packets.length === 0) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error('no packet arrived in time')
        await Promise.race([
          new Promise<void>(resolve => waiters.push(resolve)),
          new Promise<void>(resolve => setTimeout(resolve, left)),
          closed.then(() => { if (packets.length === 0) throw new Error('connection closed') }),
        ])
      }
      return packets.shift() as Packet
    },
    closed,
  }
}

export function connectPacket (fields: Record<string, unknown>): Record<string, unknown> {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: '', ...fields }
}

/**
 * CONNECT with a zero-length client id and CleanSession 0, byte by byte: mqtt.js and
 * mqtt-packet both refuse to write it, but a device may send it ([MQTT-3.1.3-8]).
 */
export const CONNECT_EMPTY_ID_PERSISTENT = Buffer.from([
  0x10, 12, // CONNECT, remaining length
  0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, // "MQTT"
  0x04, // protocol level 4 (3.1.1)
  0x00, // flags: CleanSession 0, no will, no credentials
  0x00, 0x1e, // keepalive 30 s
  0x00, 0x00, // client id: zero length
])
