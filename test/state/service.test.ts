/**
 * The state service over a real database, on both engines: versions, merge, timestamps,
 * the version check, the size and depth caps, who has a document, when deltas are sent,
 * and changes of one document racing from two processes sharing the database.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { BadRequestError, NotFoundError, PayloadTooLargeError } from '../../src/errors.js'
import { MessageType } from '../../src/protocol/index.js'
import { createStateService } from '../../src/state/service.js'
import { NotADeviceError, StateVersionConflictError } from '../../src/state/errors.js'
import { documentBytes } from '../../src/state/documents.js'
import { openDatabase } from '../../src/store/index.js'
import { verifyEnvelope } from '../../device-sdk/verify.js'
import { makeKeyPair, tempDir } from '../helpers/hub.js'
import { sqlEngines } from '../helpers/sql-engines.js'
import { HUB_ID, LIMITS, enrol, serviceFixture, sharedDatabase, startStateProcess, type RaceChange, type RaceOutcome } from './helpers.js'

for (const engine of sqlEngines()) {
  describe(`the state service on ${engine.name}`, { skip: engine.skip }, () => {
    test('a device without a document reads as the empty one at version 0', async t => {
      const { state, enrol } = await serviceFixture(t, engine)
      const device = await enrol()
      assert.deepEqual(await state.get(device.id), {
        desired: {}, reported: {}, delta: {}, version: 0, meta: { desired: {}, reported: {} },
      })
    })

    test('patchDesired merges, versions, timestamps, and sends the delta from the hub to that device', async t => {
      const { state, enrol, published, clock } = await serviceFixture(t, engine)
      const device = await enrol()
      const t1 = clock.nowMs
      const first = await state.patchDesired(device.id, { led: 'on', fan: { speed: 2, mode: 'auto' } })
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
      const second = await state.patchDesired(device.id, { fan: { mode: null }, led: null })
      assert.deepEqual(second.desired, { fan: { speed: 2 } })
      assert.deepEqual(second.meta.desired, { fan: { speed: t1 } })
      assert.equal(second.version, 2)
      assert.deepEqual(published[1].body, { delta: { fan: { speed: 2 } }, version: 2 })
      assert.deepEqual(await state.get(device.id), second, 'what was returned is what is stored')
    })

    test('report merges into reported, shrinks the delta, increments the version, and sends nothing', async t => {
      const { state, enrol, published, clock } = await serviceFixture(t, engine)
      const device = await enrol()
      await state.patchDesired(device.id, { led: 'on', fan: { speed: 2 } })
      clock.nowMs += 1_000
      const reported = await state.report(device.id, { led: 'on', fan: { speed: 1 }, firmware: '1.2.0' })
      assert.equal(reported.version, 2)
      assert.deepEqual(reported.delta, { fan: { speed: 2 } })
      assert.deepEqual(reported.meta.reported, { led: clock.nowMs, fan: { speed: clock.nowMs }, firmware: clock.nowMs })
      const synced = await state.report(device.id, { fan: { speed: 2 }, firmware: null })
      assert.equal(synced.version, 3)
      assert.deepEqual(synced.delta, {})
      assert.deepEqual(synced.reported, { led: 'on', fan: { speed: 2 } })
      assert.equal(published.length, 1, 'only the desired change sent a delta')
    })

    test('every change increments the version, even one that changes no value', async t => {
      const { state, enrol } = await serviceFixture(t, engine)
      const device = await enrol()
      assert.equal((await state.patchDesired(device.id, { a: 1 })).version, 1)
      assert.equal((await state.patchDesired(device.id, { a: 1 })).version, 2)
      assert.equal((await state.patchDesired(device.id, {})).version, 3)
      assert.equal((await state.report(device.id, {})).version, 4)
    })

    test('deltas: sent while desired differs from reported, and once more when a desired change empties it', async t => {
      const { state, enrol, published } = await serviceFixture(t, engine)
      const device = await enrol()
      await state.report(device.id, { led: 'off' })
      await state.patchDesired(device.id, { led: 'off' })
      assert.equal(published.length, 0, 'desired equal to reported: nothing to do')
      await state.patchDesired(device.id, { led: 'on' })
      assert.deepEqual(published.map(p => p.body), [{ delta: { led: 'on' }, version: 3 }])
      await state.patchDesired(device.id, { led: null })
      assert.deepEqual(published[1].body, { delta: {}, version: 4 }, 'the withdrawn target is announced')
      await state.patchDesired(device.id, { other: null })
      assert.equal(published.length, 2, 'no delta before, none after: nothing sent')
    })

    test('sendDelta: the current delta when there is one; evenIfEmpty sends an empty one; never for non-devices', async t => {
      const { state, enrol, published } = await serviceFixture(t, engine)
      const device = await enrol()
      const service = await enrol('service')
      assert.equal(await state.sendDelta(device.id), false)
      assert.equal(await state.sendDelta(device.id, { evenIfEmpty: true }), true)
      assert.deepEqual(published[0].body, { delta: {}, version: 0 })
      await state.patchDesired(device.id, { led: 'on' })
      assert.equal(await state.sendDelta(device.id), true)
      assert.deepEqual(published.map(p => p.body.version), [0, 1, 1])
      assert.equal(await state.sendDelta(service.id, { evenIfEmpty: true }), false)
      assert.equal(await state.sendDelta('0'.repeat(32), { evenIfEmpty: true }), false)
      assert.equal(published.length, 3)
    })

    test('expected version: the change is made only at that version; a conflict says the current one and writes nothing', async t => {
      const { state, enrol, published } = await serviceFixture(t, engine)
      const device = await enrol()
      assert.equal((await state.patchDesired(device.id, { a: 1 }, 0)).version, 1)
      await assert.rejects(state.patchDesired(device.id, { b: 2 }, 0), (err: unknown) => {
        assert.ok(err instanceof StateVersionConflictError)
        assert.equal(err.statusCode, 409)
        assert.equal(err.code, 'MN_ERR_CONFLICT')
        assert.equal(err.currentVersion, 1)
        assert.equal(err.expectedVersion, 0)
        return true
      })
      assert.deepEqual((await state.get(device.id)).desired, { a: 1 })
      assert.equal((await state.patchDesired(device.id, { b: 2 }, 1)).version, 2)
      assert.equal(published.length, 2, 'the refused change sent nothing')
      await assert.rejects(state.patchDesired(device.id, {}, -1), TypeError)
      await assert.rejects(state.patchDesired(device.id, {}, 1.5), TypeError)
    })

    test('the size cap: a change that would pass it is refused whole; one that reaches it exactly is taken', async t => {
      const { state, enrol } = await serviceFixture(t, engine)
      const device = await enrol()
      await state.patchDesired(device.id, { keep: 'me' })
      const base = documentBytes({ desired: { keep: 'me', big: '' }, reported: {} })
      const fits = 'x'.repeat(LIMITS.documentBytesMax - base)
      await assert.rejects(state.patchDesired(device.id, { big: fits + 'x' }), (err: unknown) => {
        assert.ok(err instanceof PayloadTooLargeError)
        assert.equal(err.statusCode, 413)
        assert.match(err.message, new RegExp(`would be ${LIMITS.documentBytesMax + 1} bytes, more than the ${LIMITS.documentBytesMax}`))
        return true
      })
      assert.equal((await state.get(device.id)).version, 1, 'nothing was written')
      const full = await state.patchDesired(device.id, { big: fits })
      assert.equal(documentBytes(full), LIMITS.documentBytesMax)
      // Reported counts against the same cap; a report that frees room is taken.
      await assert.rejects(state.report(device.id, { r: 1 }), PayloadTooLargeError)
      assert.equal((await state.patchDesired(device.id, { big: null })).version, 3)
      assert.equal((await state.report(device.id, { r: 1 })).version, 4)
      // Multi-byte characters count as their UTF-8 bytes.
      await assert.rejects(state.report(device.id, { s: '€'.repeat(LIMITS.documentBytesMax / 3) }), PayloadTooLargeError)
    })

    test('invalid patches are BadRequestError naming the section and path; nothing is written', async t => {
      const { state, enrol } = await serviceFixture(t, engine)
      const device = await enrol()
      const cases: Array<[unknown, RegExp]> = [
        [[1], /^desired must be an object$/],
        [null, /^desired must be an object$/],
        [{ a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } }, /^desired\.a\.b\.c\.d\.e\.f\.g\.h nests deeper than 8 levels$/],
        [{ bytes: new Uint8Array(1) }, /^desired\.bytes is a byte string/],
      ]
      for (const [patch, message] of cases) {
        await assert.rejects(state.patchDesired(device.id, patch), (err: unknown) => err instanceof BadRequestError && message.test(err.message))
      }
      await assert.rejects(state.report(device.id, { n: Number.NaN }), (err: unknown) => err instanceof BadRequestError && /^reported\.n is NaN/.test(err.message))
      assert.equal((await state.get(device.id)).version, 0)
      // Exactly depthMax levels is fine.
      assert.equal((await state.patchDesired(device.id, { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } })).version, 1)
    })

    test('unknown ids are NotFoundError; services and nodes have no document (NotADeviceError, a 404)', async t => {
      const { state, enrol, db } = await serviceFixture(t, engine)
      const unknown = makeKeyPair().id
      for (const run of [() => state.get(unknown), () => state.patchDesired(unknown, { a: 1 }), () => state.report(unknown, { a: 1 })]) {
        await assert.rejects(run(), (err: unknown) => err instanceof NotFoundError && !(err instanceof NotADeviceError) && err.statusCode === 404)
      }
      for (const role of ['service', 'node'] as const) {
        const principal = await enrol(role)
        for (const run of [() => state.get(principal.id), () => state.patchDesired(principal.id, { a: 1 }), () => state.report(principal.id, { a: 1 })]) {
          await assert.rejects(run(), (err: unknown) => err instanceof NotADeviceError && err.statusCode === 404 && err.message.includes(`is a ${role}`))
        }
      }
      assert.deepEqual(await db.get('SELECT count(*) AS n FROM device_states'), { n: 0 })
    })

    test('documents persist: another connection to the database reads what one wrote', async t => {
      const shared = await sharedDatabase(t, engine)
      const { state } = await serviceFixture(t, engine, { db: shared.db })
      const device = await enrol(shared.db)
      const written = await state.patchDesired(device.id, { led: 'on', list: [1, { a: null }] })
      const again = createStateService({ db: await shared.open(), log: pino({ level: 'silent' }), limits: LIMITS, hubId: HUB_ID, publishDown: async () => {} })
      t.after(() => again.close())
      assert.deepEqual(await again.get(device.id), written)
    })

    test('deltas are signed with the hub key when a signer is given', async t => {
      const hub = makeKeyPair('node')
      const { state, enrol, published } = await serviceFixture(t, engine, { hubId: hub.id, sign: hub.sign })
      const device = await enrol()
      await state.patchDesired(device.id, { led: 'on' })
      assert.equal(published[0].item.signed, true)
      assert.equal(published[0].item.envelope!.src, hub.id)
      assert.equal(verifyEnvelope(published[0].envelope, hub.publicKey, 'down'), true)
      assert.equal(verifyEnvelope(published[0].envelope, makeKeyPair().publicKey, 'down'), false)
    })

    test('a failing publish is logged, not thrown: the change stands and the device gets the delta when it comes back', async t => {
      const { state, enrol } = await serviceFixture(t, engine, { publishDown: async () => { throw new Error('broker gone') } })
      const device = await enrol()
      assert.equal((await state.patchDesired(device.id, { led: 'on' })).version, 1)
      await state.close()
      assert.equal((await state.get(device.id)).version, 1)
    })

    test('close waits for deltas the broker has not taken yet, then sends no more', async t => {
      let release!: () => void
      const taken = new Promise<void>(resolve => { release = resolve })
      const calls: string[] = []
      const { state, enrol } = await serviceFixture(t, engine, {
        publishDown: async deviceId => {
          calls.push(deviceId)
          await taken
        },
      })
      const device = await enrol()
      await state.patchDesired(device.id, { led: 'on' })
      let closed = false
      const closing = state.close().then(() => { closed = true })
      await Promise.resolve()
      assert.equal(closed, false, 'close waits for the delta in flight')
      release()
      await closing
      assert.equal((await state.patchDesired(device.id, { led: 'off' })).version, 2, 'changes are still taken')
      assert.equal(await state.sendDelta(device.id), false)
      assert.deepEqual(calls, [device.id], 'nothing sent after close')
      await state.close()
    })

    test('changes of one document from two processes at once: none is lost, each applies over the one before', async t => {
      const shared = await sharedDatabase(t, engine)
      const { state, published } = await serviceFixture(t, engine, { db: shared.db })
      const other = await startStateProcess(t, shared.target)
      const device = await enrol(shared.db)
      const rounds = 16
      const ours: RaceChange[] = []
      const theirs: RaceChange[] = []
      for (let i = 0; i < rounds; i++) {
        const changes = i % 2 === 0 ? ours : theirs
        changes.push({ deviceId: device.id, section: 'desired', patch: { [`d${i}`]: i } })
        changes.push({ deviceId: device.id, section: 'reported', patch: { [`r${i}`]: i } })
      }
      const [theirOutcomes, ourDocuments] = await Promise.all([
        other.make(theirs),
        Promise.all(ours.map(change => change.section === 'desired' ? state.patchDesired(change.deviceId, change.patch) : state.report(change.deviceId, change.patch))),
      ])
      const versions = [...ourDocuments.map(document => document.version), ...theirOutcomes.map(outcome => {
        assert.ok(outcome.ok, JSON.stringify(outcome))
        return outcome.version
      })]
      assert.deepEqual(versions.sort((x, y) => x - y), Array.from({ length: 2 * rounds }, (_, i) => i + 1), 'every change got a version of its own')
      const final = await state.get(device.id)
      assert.equal(final.version, 2 * rounds)
      assert.deepEqual(Object.keys(final.desired).sort(), Array.from({ length: rounds }, (_, i) => `d${i}`).sort())
      assert.deepEqual(Object.keys(final.reported).sort(), Array.from({ length: rounds }, (_, i) => `r${i}`).sort())
      assert.equal(published.length, rounds / 2, 'each desired change made here sent its delta')
    })

    test('the expected version from two processes at once: exactly one change is made, the others conflict at its version', async t => {
      const shared = await sharedDatabase(t, engine)
      const { state, published } = await serviceFixture(t, engine, { db: shared.db })
      const other = await startStateProcess(t, shared.target)
      const device = await enrol(shared.db)
      await state.patchDesired(device.id, { base: true })
      const change = (i: number): RaceChange => ({ deviceId: device.id, section: 'desired', patch: { [`w${i}`]: i }, expectedVersion: 1 })
      const [theirOutcomes, ourOutcomes] = await Promise.all([
        other.make([0, 1, 2, 3].map(change)),
        Promise.all([4, 5, 6, 7].map(async (i): Promise<RaceOutcome> => {
          try {
            return { ok: true, version: (await state.patchDesired(device.id, change(i).patch, 1)).version }
          } catch (err) {
            if (err instanceof StateVersionConflictError) return { ok: false, conflictAt: err.currentVersion }
            throw err
          }
        })),
      ])
      const outcomes = [...theirOutcomes, ...ourOutcomes]
      assert.deepEqual(outcomes.filter(outcome => outcome.ok), [{ ok: true, version: 2 }], JSON.stringify(outcomes))
      assert.deepEqual(outcomes.filter(outcome => !outcome.ok), Array.from({ length: 7 }, () => ({ ok: false, conflictAt: 2 })))
      const final = await state.get(device.id)
      assert.equal(final.version, 2)
      const winner = outcomes.findIndex(outcome => outcome.ok)
      assert.deepEqual(final.desired, { base: true, [`w${winner}`]: winner }, 'the document is the one change\'s result')
      assert.equal(published.length, winner >= 4 ? 2 : 1, 'a delta for the base, and one for the change if it was made here')
    })

    test('the factory checks its options at once', async t => {
      const { db } = await serviceFixture(t, engine)
      const base = { db, log: pino({ level: 'silent' }), limits: LIMITS, hubId: HUB_ID, publishDown: async () => {} }
      assert.throws(() => createStateService({ ...base, hubId: 'hub' }), /hubId expected a principal id/)
      assert.throws(() => createStateService({ ...base, limits: { ...LIMITS, depthMax: 0 } }), /limits\.depthMax expected a positive integer, got 0/)
      assert.throws(() => createStateService({ ...base, limits: { ...LIMITS, documentBytesMax: 1.5 } }), /limits\.documentBytesMax/)
      assert.throws(() => createStateService({ ...base, publishDown: undefined as never }), /publishDown expected a function/)
    })
  })
}

test('the factory refuses a better-sqlite3 Database where a SqlDatabase is due', t => {
  const raw = openDatabase(`${tempDir(t)}/hub.db`)
  t.after(() => raw.close())
  const options = { db: raw as never, log: pino({ level: 'silent' }), limits: LIMITS, hubId: HUB_ID, publishDown: async () => {} }
  assert.throws(() => createStateService(options), /db expected a SqlDatabase/)
})
