/**
 * The binary CONNECT password in browsers.
 *
 * Why this exists: mqtt.js accepts a password only as a string or as `instanceof Buffer`,
 * and its browser bundle (dist/mqtt.esm.js) carries its own private Buffer polyfill that
 * no caller can reach, so neither a Uint8Array nor an app's own Buffer polyfill passes.
 * A string is written as UTF-8, which cannot carry the 88 arbitrary bytes of
 * protocol-v1 §2. So in browsers the SDK gives mqtt.js a placeholder of 88 NUL characters
 * (88 bytes in UTF-8, so every length field in the packet is already right) and swaps the
 * real bytes in as the CONNECT leaves through the WebSocket. The password is the last
 * field of a CONNECT in MQTT 3.1.1 and 5 ([MQTT-3.1.3-1]), so its place is the last 88
 * bytes of the first packet on the connection; the patcher checks that those bytes are
 * the placeholder and refuses to touch anything else.
 */
import { MetanodeSdkError } from './errors.js'

export const PASSWORD_BYTES = 88
export const PASSWORD_PLACEHOLDER = '\u0000'.repeat(PASSWORD_BYTES)

const CONNECT_HEADER = 0x10
// A remaining length is at most 4 bytes of 7 bits ([MQTT-2.2.3]).
const REMAINING_LENGTH_BYTES_MAX = 4

/**
 * Returns a function that maps each chunk written to the socket to the chunk to send:
 * chunks that overlap the CONNECT's password bytes come back as patched copies, every
 * other chunk unchanged. Chunks may split the packet anywhere (mqtt-packet writes each
 * field separately; ws streams do not coalesce them).
 */
export function createConnectPatcher (password: Uint8Array): (chunk: Uint8Array) => Uint8Array {
  if (password.length !== PASSWORD_BYTES) throw new MetanodeSdkError(`password must be ${PASSWORD_BYTES} bytes, got ${password.length}`)
  let offset = 0 // bytes of the stream seen so far
  let headerBytes = 0 // fixed header bytes parsed (type byte + remaining length)
  let remainingLength = 0
  let lengthMultiplier = 1
  let packetEnd = -1 // offset just past the CONNECT, once its header is parsed
  let done = false

  return function patch (chunk: Uint8Array): Uint8Array {
    if (done) return chunk
    let out = chunk
    for (let i = 0; i < chunk.length; i++) {
      const at = offset + i
      if (packetEnd < 0) {
        const byte = chunk[i]
        if (headerBytes === 0) {
          if (byte !== CONNECT_HEADER) throw new MetanodeSdkError('the first packet on the WebSocket is not a CONNECT; refusing to patch the password')
        } else {
          remainingLength += (byte & 0x7f) * lengthMultiplier
          lengthMultiplier *= 128
          if ((byte & 0x80) === 0) packetEnd = at + 1 + remainingLength
          else if (headerBytes === REMAINING_LENGTH_BYTES_MAX) throw new MetanodeSdkError('malformed CONNECT remaining length')
        }
        headerBytes++
        continue
      }
      if (at >= packetEnd) {
        done = true
        break
      }
      if (at >= packetEnd - PASSWORD_BYTES) {
        if (chunk[i] !== 0) throw new MetanodeSdkError('the CONNECT does not end with the password placeholder; refusing to patch it')
        if (out === chunk) out = Uint8Array.from(chunk)
        out[i] = password[at - (packetEnd - PASSWORD_BYTES)]
        if (at === packetEnd - 1) done = true
      }
    }
    offset += chunk.length
    return out
  }
}

/** The subset of WebSocket that the patch needs: browsers' and the `ws` package's both fit. */
interface SendingSocket {
  send (data: any, ...rest: any[]): void
}

/** Wraps `socket.send` so the CONNECT leaves with the real password (see the file comment). */
export function patchSocketPassword<S extends SendingSocket> (socket: S, password: Uint8Array): S {
  const patch = createConnectPatcher(password)
  const send = socket.send.bind(socket)
  socket.send = (data: any, ...rest: any[]) => send(patch(toBytes(data)), ...rest)
  return socket
}

function toBytes (data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (typeof data === 'string') return new TextEncoder().encode(data)
  throw new MetanodeSdkError(`cannot send ${typeof data} on the MQTT WebSocket`)
}
