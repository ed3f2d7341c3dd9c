/**
 * The state service over a real SQLite store: versions, merge, timestamps, the version
 * check, the size and depth caps, who has a document, and when deltas are sent.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { BadRequestError, NotFoundError, PayloadTooLargeError } from '../../src/errors.js'
import { MessageType } from '../../src/protocol/index.js'
import { createStateService } from '../../src/state/service.js'
import { NotADeviceError, StateVersionConflictError } from '../../src/state/errors.js'
import { documentBytes } from '../../src/state/documents.js'
import { verifyEnvelope } from '../../device-sdk/verify.js'
import { makeKeyPair } from '../helpers/hub.js'
import { HUB_ID, LIMITS, serviceFixture } from './helpers.js'

test('a device without a document reads as the empty one at version 0', t => {
  const { state, enrol } = serviceFixture(t)
  const device = enrol()
  assert.deepEqual(state.get(device.id), {
    desired: {}, reported: {}, delta: {}, version: 0, meta: { desired: {}, reported: {} },
  })
})

test('patchDesired merges, versions, timestamps, and sends the delta from the hub to that device', t => {
  const { state, enrol, published, clock } = serviceFixture(t)
  const device = enrol()
  const t1 = clock.nowMs
  const first = state.patchDesired(device.id, { led: 'on', fan: { speed: 2, mode: 'auto' } })
  assert.deepEqual(first, {
    desired: { led: 'on', fan: { speed: 2, mode: 'auto' } },
    reported: {},
    delta: { led: 'on', fan: { speed: 2, mode: 'auto' } },
    version: 1,
    meta: { desired: { led: t1, fan: { speed: t1, mode: t1 } }, reported: {} },
  })
  assert.equal(published.length, 1)
  const [sent] = published
  assert.equal(sent.deviceId, device.id)
  const envelope = sent.item.envelope!
  assert.equal(envelope.type, MessageType.StateUpdate)
  assert.equal(envelope.src, HUB_ID)
  assert.equal(envelope.dst, device.id)
  assert.equal(envelope.ack, false)
  assert.equal(sent.item.signed, false)
  assert.deepEqual(sent.body, { delta: { led: 'on', fan: { speed: 2, mode: 'auto' } }, version: 1 })

  clock.nowMs += 500
  const second = state.patchDesired(device.id, { fan: { mode: null }, led: null })
  assert.deepEqual(second.desired, { fan: { speed: 2 } })
  assert.deepEqual(second.meta.desired, { fan: { speed: t1 } })
  assert.equal(second.version, 2)
  assert.deepEqual(published[1].body, { delta: { fan: { speed: 2 } }, version: 2 })
  assert.deepEqual(state.get(device.id), second, 'what was returned is what is stored')
})

test('report merges into reported, shrinks the delta, increments the version, and sends nothing', t => {
  const { state, enrol, published, clock } = serviceFixture(t)
  const device = enrol()
  state.patchDesired(device.id, { led: 'on', fan: { speed: 2 } })
  clock.nowMs += 1_000
  const reported = state.report(device.id, { led: 'on', fan: { speed: 1 }, firmware: '1.2.0' })
  assert.equal(reported.version, 2)
  assert.deepEqual(reported.delta, { fan: { speed: 2 } })
  assert.deepEqual(reported.meta.reported, { led: clock.nowMs, fan: { speed: clock.nowMs }, firmware: clock.nowMs })
  const synced = state.report(device.id, { fan: { speed: 2 }, firmware: null })
  assert.equal(synced.version, 3)
  assert.deepEqual(synced.delta, {})
  assert.deepEqual(synced.reported, { led: 'on', fan: { speed: 2 } })
  assert.equal(published.length, 1, 'only the desired change sent a delta')
})

test('every change increments the version, even one that changes no value', t => {
  const { state, enrol } = serviceFixture(t)
  const device = enrol()
  assert.equal(state.patchDesired(device.id, { a: 1 }).version, 1)
  assert.equal(state.patchDesired(device.id, { a: 1 }).version, 2)
  assert.equal(state.patchDesired(device.id, {}).version, 3)
  assert.equal(state.report(device.id, {}).version, 4)
})

test('deltas: sent while desired differs from reported, and once more when a desired change empties it', t => {
  const { state, enrol, published } = serviceFixture(t)
  const device = enrol()
  state.report(device.id, { led: 'off' })
  state.patchDesired(device.id, { led: 'off' })
  assert.equal(published.length, 0, 'desired equal to reported: nothing to do')
  state.patchDesired(device.id, { led: 'on' })
  assert.deepEqual(published.map(p => p.body), [{ delta: { led: 'on' }, version: 3 }])
  state.patchDesired(device.id, { led: null })
  assert.deepEqual(published[1].body, { delta: {}, version: 4 }, 'the withdrawn target is announced')
  state.patchDesired(device.id, { other: null })
  assert.equal(published.length, 2, 'no delta before, none after: nothing sent')
})

test('sendDelta: the current delta when there is one; evenIfEmpty sends an empty one; never for non-devices', t => {
  const { state, enrol, published } = serviceFixture(t)
  const device = enrol()
  const service = enrol('service')
  assert.equal(state.sendDelta(device.id), false)
  assert.equal(state.sendDelta(device.id, { evenIfEmpty: true }), true)
  assert.deepEqual(published[0].body, { delta: {}, version: 0 })
  state.patchDesired(device.id, { led: 'on' })
  assert.equal(state.sendDelta(device.id), true)
  assert.deepEqual(published.map(p => p.body.version), [0, 1, 1])
  assert.equal(state.sendDelta(service.id, { evenIfEmpty: true }), false)
  assert.equal(state.sendDelta('0'.repeat(32), { evenIfEmpty: true }), false)
  assert.equal(published.length, 3)
})

test('expected version: the change is made only at that version; a conflict says the current one and writes nothing', t => {
  const { state, enrol, published } = serviceFixture(t)
  const device = enrol()
  assert.equal(state.patchDesired(device.id, { a: 1 }, 0).version, 1)
  assert.throws(() => state.patchDesired(device.id, { b: 2 }, 0), (err: unknown) => {
    assert.ok(err instanceof StateVersionConflictError)
    assert.equal(err.statusCode, 409)
    assert.equal(err.code, 'MN_ERR_CONFLICT')
    assert.equal(err.currentVersion, 1)
    assert.equal(err.expectedVersion, 0)
    return true
  })
  assert.deepEqual(state.get(device.id).desired, { a: 1 })
  assert.equal(state.patchDesired(device.id, { b: 2 }, 1).version, 2)
  assert.equal(published.length, 2, 'the refused change sent nothing')
  assert.throws(() => state.patchDesired(device.id, {}, -1), TypeError)
  assert.throws(() => state.patchDesired(device.id, {}, 1.5), TypeError)
})

test('the size cap: a change that would pass it is refused whole; one that reaches it exactly is taken', t => {
  const { state, enrol } = serviceFixture(t)
  const device = enrol()
  state.patchDesired(device.id, { keep: 'me' })
  const base = documentBytes({ desired: { keep: 'me', big: '' }, reported: {} })
  const fits = 'x'.repeat(LIMITS.documentBytesMax - base)
  assert.throws(() => state.patchDesired(device.id, { big: fits + 'x' }), (err: unknown) => {
    assert.ok(err instanceof PayloadTooLargeError)
    assert.equal(err.statusCode, 413)
    assert.match(err.message, new RegExp(`would be ${LIMITS.documentBytesMax + 1} bytes, more than the ${LIMITS.documentBytesMax}`))
    return true
  })
  assert.equal(state.get(device.id).version, 1, 'nothing was written')
  const full = state.patchDesired(device.id, { big: fits })
  assert.equal(documentBytes(full), LIMITS.documentBytesMax)
  // Reported counts against the same cap; a report that frees room is taken.
  assert.throws(() => state.report(device.id, { r: 1 }), PayloadTooLargeError)
  assert.equal(state.patchDesired(device.id, { big: null }).version, 3)
  assert.equal(state.report(device.id, { r: 1 }).version, 4)
  // Multi-byte characters count as their UTF-8 bytes.
  assert.throws(() => state.report(device.id, { s: '€'.repeat(LIMITS.documentBytesMax / 3) }), PayloadTooLargeError)
})

test('invalid patches are BadRequestError naming the section and path; nothing is written', t => {
  const { state, enrol } = serviceFixture(t)
  const device = enrol()
  const cases: Array<[unknown, RegExp]> = [
    [[1], /^desired must be an object$/],
    [null, /^desired must be an object$/],
    [{ a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } }, /^desired\.a\.b\.c\.d\.e\.f\.g\.h nests deeper than 8 levels$/],
    [{ bytes: new Uint8Array(1) }, /^desired\.bytes is a byte string/],
  ]
  for (const [patch, message] of cases) {
    assert.throws(() => state.patchDesired(device.id, patch), (err: unknown) => err instanceof BadRequestError && message.test(err.message))
  }
  assert.throws(() => state.report(device.id, { n: Number.NaN }), (err: unknown) => err instanceof BadRequestError && /^reported\.n is NaN/.test(err.message))
  assert.equal(state.get(device.id).version, 0)
  // Exactly depthMax levels is fine.
  assert.equal(state.patchDesired(device.id, { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } }).version, 1)
})

test('unknown ids are NotFoundError; services and nodes have no document (NotADeviceError, a 404)', t => {
  const { state, enrol, store } = serviceFixture(t)
  const unknown = makeKeyPair().id
  for (const run of [() => state.get(unknown), () => state.patchDesired(unknown, { a: 1 }), () => state.report(unknown, { a: 1 })]) {
    assert.throws(run, (err: unknown) => err instanceof NotFoundError && !(err instanceof NotADeviceError) && err.statusCode === 404)
  }
  for (const role of ['service', 'node'] as const) {
    const principal = enrol(role)
    for (const run of [() => state.get(principal.id), () => state.patchDesired(principal.id, { a: 1 }), () => state.report(principal.id, { a: 1 })]) {
      assert.throws(run, (err: unknown) => err instanceof NotADeviceError && err.statusCode === 404 && err.message.includes(`is a ${role}`))
    }
  }
  assert.equal((store.db.prepare('SELECT count(*) AS n FROM device_states').get() as { n: number }).n, 0)
})

test('documents persist across a reopened store', t => {
  const { state, enrol, store } = serviceFixture(t)
  const device = enrol()
  const written = state.patchDesired(device.id, { led: 'on', list: [1, { a: null }] })
  const again = createStateService({ db: store.db, log: pino({ level: 'silent' }), limits: LIMITS, hubId: HUB_ID, publishDown: async () => {} })
  t.after(() => again.close())
  assert.deepEqual(again.get(device.id), written)
})

test('deltas are signed with the hub key when a signer is given', t => {
  const hub = makeKeyPair('node')
  const { state, enrol, published } = serviceFixture(t, { hubId: hub.id, sign: hub.sign })
  const device = enrol()
  state.patchDesired(device.id, { led: 'on' })
  assert.equal(published[0].item.signed, true)
  assert.equal(published[0].item.envelope!.src, hub.id)
  assert.equal(verifyEnvelope(published[0].envelope, hub.publicKey, 'down'), true)
  assert.equal(verifyEnvelope(published[0].envelope, makeKeyPair().publicKey, 'down'), false)
})

test('a failing publish is logged, not thrown: the change stands and the device gets the delta when it comes back', async t => {
  const { state, enrol } = serviceFixture(t, { publishDown: async () => { throw new Error('broker gone') } })
  const device = enrol()
  assert.equal(state.patchDesired(device.id, { led: 'on' }).version, 1)
  await state.close()
  assert.equal(state.get(device.id).version, 1)
})

test('close waits for deltas the broker has not taken yet, then sends no more', async t => {
  let release!: () => void
  const taken = new Promise<void>(resolve => { release = resolve })
  const calls: string[] = []
  const { state, enrol } = serviceFixture(t, {
    publishDown: async deviceId => {
      calls.push(deviceId)
      await taken
    },
  })
  const device = enrol()
  state.patchDesired(device.id, { led: 'on' })
  let closed = false
  const closing = state.close().then(() => { closed = true })
  await Promise.resolve()
  assert.equal(closed, false, 'close waits for the delta in flight')
  release()
  await closing
  assert.equal(state.patchDesired(device.id, { led: 'off' }).version, 2, 'changes are still taken')
  assert.equal(state.sendDelta(device.id), false)
  assert.deepEqual(calls, [device.id], 'nothing sent after close')
  await state.close()
})

test('the factory checks its options at once', t => {
  const { store } = serviceFixture(t)
  const base = { db: store.db, log: pino({ level: 'silent' }), limits: LIMITS, hubId: HUB_ID, publishDown: async () => {} }
  assert.throws(() => createStateService({ ...base, hubId: 'hub' }), /hubId expected a principal id/)
  assert.throws(() => createStateService({ ...base, limits: { ...LIMITS, depthMax: 0 } }), /limits\.depthMax expected a positive integer, got 0/)
  assert.throws(() => createStateService({ ...base, limits: { ...LIMITS, documentBytesMax: 1.5 } }), /limits\.documentBytesMax/)
  assert.throws(() => createStateService({ ...base, publishDown: undefined as never }), /publishDown expected a function/)
})
