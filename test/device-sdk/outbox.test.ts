import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Outbox, takeBatch, BATCH_HEAD_BYTES_MAX } from '../../device-sdk/outbox.js'
import { PayloadTooLargeError, QueueFullError } from '../../device-sdk/errors.js'

interface Item { prio: number, seq: number, size: number }

let seq = 0
function item (prio = 2, size = 10): Item {
  return { prio, seq: seq++, size }
}
const encode = (i: Item): Uint8Array => new Uint8Array(i.size)
const limits = { maxItems: 256, maxBytes: 1_000, payloadBytesMax: 2_000 }

test("'reject': a full queue refuses the new item and keeps every queued one", () => {
  const outbox = new Outbox<Item>(3, 'reject')
  const items = [item(), item(), item()]
  for (const i of items) assert.equal(outbox.push(i), undefined)
  assert.throws(() => outbox.push(item()), (err: unknown) => err instanceof QueueFullError && !err.dropped)
  assert.equal(outbox.size, 3)
  assert.deepEqual([outbox.shift(), outbox.shift(), outbox.shift()], items)
  assert.equal(outbox.shift(), undefined)
  assert.equal(outbox.size, 0)
})

test("'drop-oldest': a full queue gives up its oldest item of the least urgent priority", () => {
  const outbox = new Outbox<Item>(3, 'drop-oldest')
  const critical = item(0)
  const low1 = item(3)
  const low2 = item(3)
  outbox.push(critical)
  outbox.push(low1)
  outbox.push(low2)
  const newer = item(2)
  assert.equal(outbox.push(newer), low1)
  assert.equal(outbox.size, 3)
  assert.equal(outbox.push(item(1)), low2)
  // Only urgent items left: the oldest of the least urgent lane (2) goes next.
  assert.equal(outbox.push(item(0)), newer)
  assert.equal(outbox.size, 3)
  assert.equal(outbox.peek(), critical)
})

test('the queue never holds more than max new items, whatever the policy', () => {
  for (const policy of ['reject', 'drop-oldest'] as const) {
    const outbox = new Outbox<Item>(50, policy)
    for (let i = 0; i < 1_000; i++) {
      try {
        outbox.push(item(i % 4))
      } catch (err) {
        assert.ok(err instanceof QueueFullError)
      }
      assert.ok(outbox.size <= 50)
    }
    assert.equal(outbox.size, 50)
  }
})

test('most urgent first, publish order within a priority', () => {
  const outbox = new Outbox<Item>(10, 'reject')
  const a = item(2)
  const b = item(3)
  const c = item(0)
  const d = item(2)
  const e = item(1)
  for (const i of [a, b, c, d, e]) outbox.push(i)
  assert.deepEqual([1, 2, 3, 4, 5].map(() => outbox.shift()), [c, e, a, d, b])
})

test('requeued items go back ahead of newer ones, in publish order, even past max', () => {
  const outbox = new Outbox<Item>(2, 'reject')
  const first = item()
  const second = item()
  const third = item()
  const fourth = item()
  outbox.push(third)
  outbox.push(fourth)
  outbox.requeue([second, first])
  assert.equal(outbox.size, 4)
  assert.throws(() => outbox.push(item()), QueueFullError)
  assert.deepEqual([1, 2, 3, 4].map(() => outbox.shift()), [first, second, third, fourth])
})

test('remove and clear keep the size right', () => {
  const outbox = new Outbox<Item>(10, 'reject')
  const items = [item(0), item(2), item(3)]
  for (const i of items) outbox.push(i)
  assert.equal(outbox.remove(items[1]), true)
  assert.equal(outbox.remove(items[1]), false)
  assert.equal(outbox.size, 2)
  assert.deepEqual(outbox.clear(), [items[0], items[2]])
  assert.equal(outbox.size, 0)
})

test('a batch stops at maxItems', () => {
  const outbox = new Outbox<Item>(1_000, 'reject')
  for (let i = 0; i < 10; i++) outbox.push(item())
  const batch = takeBatch(outbox, encode, { ...limits, maxItems: 4 })
  assert.equal(batch.items.length, 4)
  assert.equal(batch.encoded.length, 4)
  assert.equal(outbox.size, 6)
})

test('a batch never holds more than 256 envelopes (protocol-v1 §4)', () => {
  const outbox = new Outbox<Item>(1_000, 'reject')
  for (let i = 0; i < 600; i++) outbox.push(item(2, 1))
  const batch = takeBatch(outbox, encode, { maxItems: 10_000, maxBytes: 1e9, payloadBytesMax: 1e9 })
  assert.equal(batch.items.length, 256)
})

test('a batch stops before the envelope that would take it past maxBytes', () => {
  const outbox = new Outbox<Item>(1_000, 'reject')
  for (let i = 0; i < 10; i++) outbox.push(item(2, 100))
  const batch = takeBatch(outbox, encode, { ...limits, maxBytes: 350 })
  const bytes = BATCH_HEAD_BYTES_MAX + batch.encoded.reduce((sum, e) => sum + e.length, 0)
  assert.equal(batch.items.length, 3)
  assert.ok(bytes <= 350)
  assert.equal(outbox.size, 7, 'the envelope that did not fit stays queued')
})

test('an envelope larger than maxBytes (but within the hub limit) goes alone', () => {
  const outbox = new Outbox<Item>(1_000, 'reject')
  const big = item(2, 1_500)
  outbox.push(big)
  outbox.push(item(2, 10))
  const first = takeBatch(outbox, encode, limits)
  assert.deepEqual(first.items, [big])
  const second = takeBatch(outbox, encode, limits)
  assert.equal(second.items.length, 1)
})

test('envelopes over the hub limit, or that fail to encode, are handed back as failed, not sent', () => {
  const outbox = new Outbox<Item>(1_000, 'reject')
  const tooBig = item(2, 2_001)
  const broken = item(2, -1)
  const fine = item(2, 10)
  for (const i of [tooBig, broken, fine]) outbox.push(i)
  const batch = takeBatch(outbox, i => {
    if (i.size < 0) throw new TypeError('cannot encode')
    return encode(i)
  }, limits)
  assert.deepEqual(batch.items, [fine])
  assert.equal(batch.failed.length, 2)
  assert.ok(batch.failed[0].error instanceof PayloadTooLargeError)
  assert.equal(batch.failed[0].item, tooBig)
  assert.ok(batch.failed[1].error instanceof TypeError)
  assert.equal(outbox.size, 0)
})
