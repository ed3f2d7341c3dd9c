import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TokenBucket, BadPacketCounter } from '../../broker/client-limits.js'
import { guardPacketSize, PacketTooLargeError } from '../../broker/packet-size-guard.js'

test('the token bucket allows the burst, then asks to wait for the refill', () => {
  const bucket = new TokenBucket(10, 3, 0)
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0)], [0, 0, 0])
  assert.equal(bucket.take(0), 100)
  assert.equal(bucket.take(1000), 0, 'refilled after a second')
})

test('the bad packet counter trips past its threshold and forgets after its window', () => {
  const counter = new BadPacketCounter(2, 1000)
  assert.equal(counter.add(0), false)
  assert.equal(counter.add(10), false)
  assert.equal(counter.add(20), true)
  assert.equal(counter.add(5000), false)
})

function publishPacket (payloadBytes: number): Buffer {
  const topic = Buffer.from('t')
  const remaining = 2 + topic.length + payloadBytes
  const length: number[] = []
  let n = remaining
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    length.push(byte)
  } while (n > 0)
  return Buffer.concat([Buffer.from([0x30, ...length, 0, topic.length]), topic, Buffer.alloc(payloadBytes)])
}

test('the size guard passes packets under the cap, split across chunks at any byte', () => {
  const parsed: Buffer[] = []
  const parser = { parse (buf: Buffer) { parsed.push(buf); return 0 } }
  let refused: PacketTooLargeError | null = null
  guardPacketSize(parser, 1000, err => { refused = err })
  const stream = Buffer.concat([publishPacket(10), publishPacket(500), publishPacket(997)])
  for (let i = 0; i < stream.length; i += 3) parser.parse(stream.subarray(i, i + 3))
  assert.equal(refused, null)
  assert.equal(Buffer.concat(parsed).length, stream.length)
})

test('the size guard refuses a packet over the cap from its header alone', () => {
  const parser = { parse (_buf: Buffer) { return 0 } }
  let refused: PacketTooLargeError | null = null
  guardPacketSize(parser, 1000, err => { refused = err })
  parser.parse(publishPacket(10))
  parser.parse(publishPacket(5000).subarray(0, 4))
  assert.ok(refused)
  assert.equal((refused as PacketTooLargeError).bytes, 5003)
})
