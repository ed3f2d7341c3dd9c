/**
 * Just enough MQTT 3.1.1 over a bare socket for the connection phases. The CONNECT and
 * SUBSCRIBE packets are built ahead of time, so one connect cycle costs the generator a
 * socket and a few writes: mqtt.js would cost more than the broker side being measured.
 */
import { connect, type Socket } from 'node:net'

export interface ConnectFields {
  clientId: string
  username?: string
  password?: Uint8Array
  keepaliveSeconds?: number
}

export const DISCONNECT = Buffer.from([0xe0, 0x00])

export function encodeConnect (fields: ConnectFields): Buffer {
  const parts: Buffer[] = [
    lengthPrefixed(Buffer.from('MQTT')),
    Buffer.from([4]),
    Buffer.from([(fields.username !== undefined ? 0x80 : 0) | (fields.password !== undefined ? 0x40 : 0) | 0x02]),
    uint16(fields.keepaliveSeconds ?? 60),
    lengthPrefixed(Buffer.from(fields.clientId)),
  ]
  if (fields.username !== undefined) parts.push(lengthPrefixed(Buffer.from(fields.username)))
  if (fields.password !== undefined) parts.push(lengthPrefixed(Buffer.from(fields.password)))
  return withFixedHeader(0x10, Buffer.concat(parts))
}

export function encodeSubscribe (packetId: number, filter: string, qos: 0 | 1): Buffer {
  return withFixedHeader(0x82, Buffer.concat([uint16(packetId), lengthPrefixed(Buffer.from(filter)), Buffer.from([qos])]))
}

function withFixedHeader (first: number, body: Buffer): Buffer {
  const length: number[] = []
  let n = body.length
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    length.push(byte)
  } while (n > 0)
  return Buffer.concat([Buffer.from([first, ...length]), body])
}

function lengthPrefixed (bytes: Buffer): Buffer {
  return Buffer.concat([uint16(bytes.length), bytes])
}

function uint16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/**
 * Opens a socket, sends CONNECT and, once CONNACK 0 arrived, the SUBSCRIBE when given
 * (a SUBSCRIBE sent before CONNACK would race the broker's authentication). Resolves with
 * the CONNACK return code once everything is answered; the socket is left open.
 */
export function rawConnect (port: number, connectPacket: Buffer, subscribePacket: Buffer | null, timeoutMs = 10_000): Promise<{ socket: Socket, returnCode: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true })
    let pending: Buffer = Buffer.alloc(0)
    let returnCode = -1
    const finish = (err: Error | null): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('close', onClose)
      // Later errors (a broker closing idle sockets at the end) must not crash the bench.
      socket.on('error', () => {})
      if (err) {
        socket.destroy()
        reject(err)
      } else {
        resolve({ socket, returnCode })
      }
    }
    const onError = (err: Error): void => finish(err)
    const onClose = (): void => finish(new Error(returnCode >= 0 ? 'closed before SUBACK' : 'closed before CONNACK'))
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    const onData = (chunk: Buffer): void => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      // The packets expected here are short: their remaining length is always one byte.
      while (pending.length >= 2 && pending.length >= 2 + pending[1]) {
        const type = pending[0] >> 4
        const packet = pending.subarray(0, 2 + pending[1])
        pending = pending.subarray(packet.length)
        if (type === 2) {
          returnCode = packet[3]
          if (returnCode !== 0 || !subscribePacket) return finish(null)
          socket.write(subscribePacket)
        } else if (type === 9) {
          return finish(null)
        }
      }
    }
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.write(connectPacket)
  })
}

/** Sends DISCONNECT and resolves once the connection is closed. */
export function rawDisconnect (socket: Socket): Promise<void> {
  return new Promise(resolve => {
    if (socket.destroyed) return resolve()
    socket.once('close', () => resolve())
    socket.end(DISCONNECT)
  })
}
