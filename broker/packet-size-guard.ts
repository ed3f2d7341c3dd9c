/**
 * Aedes 1.x has no inbound maximum packet size: mqtt-packet buffers a whole PUBLISH before
 * any hook runs, so a client could make the hub hold up to 256 MiB per connection. This
 * guard reads only the MQTT fixed headers of the bytes on their way into the parser
 * ([MQTT-2.2.3]: the Remaining Length is a varint of 1 to 4 bytes) and refuses a packet
 * whose length is over the cap before its body arrives. It wraps the parser's `parse`
 * because Aedes reads the socket itself (paused mode), so a second reader cannot be added.
 */

export class PacketTooLargeError extends Error {
  constructor (readonly bytes: number, readonly maxBytes: number) {
    super(`MQTT packet of ${bytes} bytes is over the ${maxBytes}-byte limit`)
    this.name = 'PacketTooLargeError'
  }
}

interface Parser { parse (buf: Buffer): number }

export function guardPacketSize (parser: Parser, maxBytes: number, onTooLarge: (err: PacketTooLargeError) => void): void {
  const parse = parser.parse.bind(parser)
  // State of the framing walk, carried across chunks.
  let skipBytes = 0 // bytes of the current packet's body still to come
  let headerBytes = 0 // 0 = expecting a fixed-header byte; else varint bytes read so far
  let length = 0
  let multiplier = 1
  let refused = false

  parser.parse = function guardedParse (buf: Buffer): number {
    if (refused) return 0
    let i = 0
    while (i < buf.length) {
      if (skipBytes > 0) {
        const step = Math.min(skipBytes, buf.length - i)
        skipBytes -= step
        i += step
        continue
      }
      if (headerBytes === 0) {
        headerBytes = 1 // the packet type byte
        length = 0
        multiplier = 1
        i += 1
        continue
      }
      const byte = buf[i]
      i += 1
      headerBytes += 1
      length += (byte & 0x7f) * multiplier
      multiplier *= 128
      if ((byte & 0x80) === 0 || headerBytes > 4) {
        headerBytes = 0
        if (length > maxBytes) {
          refused = true
          onTooLarge(new PacketTooLargeError(length, maxBytes))
          return 0
        }
        skipBytes = length
      }
    }
    return parse(buf)
  }
}
