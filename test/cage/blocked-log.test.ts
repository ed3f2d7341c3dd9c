import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AuditLog } from '../../src/cage/audit.js'
import { BlockedRequestLog } from '../../src/cage/blocked-log.js'
import { sqlEngines } from '../helpers/sql-engines.js'

const WINDOW_MS = 60_000
const T0 = WINDOW_MS * 1_000

function refusal (key: string) {
  return { key, actor: 'anonymous', action: 'request.blocked', target: '/x', source: key, detail: { rule: 'r' } }
}

for (const engine of sqlEngines()) {
  describe(`refused requests in the audit log on ${engine.name}`, { skip: engine.skip }, () => {
    test('per key and in all, at most so many entries a window; the rest go into one summary', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      const log = new BlockedRequestLog({ audit, perKeyMax: 2, totalMax: 5, topKeys: 2 })
      t.after(() => log.close())
      assert.equal(log.record(refusal('a'), T0), 'written')
      assert.equal(log.record(refusal('a'), T0 + 1), 'written')
      assert.equal(log.record(refusal('a'), T0 + 2), 'suppressed')
      for (const key of ['b', 'c', 'd', 'e']) log.record(refusal(key), T0 + 3)
      await log.settled()
      // Five written (a, a, b, c, d): e found the window's total spent.
      assert.equal((await audit.list({ limit: 100, action: 'request.blocked' })).length, 5)
      for (let i = 0; i < 10; i++) log.record(refusal('b'), T0 + 4)
      // The next window's first refusal writes the summary of the last one.
      assert.equal(log.record(refusal('z'), T0 + WINDOW_MS), 'written')
      await log.settled()
      const [summary] = await audit.list({ limit: 10, action: 'request.suppressed' })
      assert.equal(summary.actor, 'hub')
      assert.deepEqual(summary.detail, {
        windowStartMs: T0, windowMs: WINDOW_MS, written: 5, suppressed: 12, keys: 3, top: [{ key: 'b', suppressed: 10 }, { key: 'a', suppressed: 1 }], uncounted: 0,
      })
      assert.equal((await audit.verify()).ok, true)
    })

    test('a flood from many keys grows the log by at most totalMax + 1 entries a window', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      const log = new BlockedRequestLog({ audit, perKeyMax: 5, totalMax: 20, keysMax: 100 })
      for (let i = 0; i < 5_000; i++) log.record(refusal(`10.0.${i >> 8}.${i & 255}`), T0 + i)
      await log.close()
      const entries = await audit.list({ limit: 1000 })
      assert.equal(entries.length, 21)
      const summary = entries[20]
      assert.equal(summary.action, 'request.suppressed')
      assert.equal(summary.detail.suppressed, 4_980)
      assert.equal(summary.detail.keys, 80) // keys counted beyond the 20 written, up to keysMax
      assert.equal(summary.detail.uncounted, 4_900)
      assert.equal(log.record(refusal('late'), T0 + 10_000), 'suppressed', 'nothing is written after close')
      await log.close()
    })

    test('a failing audit write is reported, never thrown at the request', async (t) => {
      const db = await engine.open(t)
      const errors: unknown[] = []
      const log = new BlockedRequestLog({ audit: new AuditLog(db), onError: err => errors.push(err) })
      t.after(() => log.close())
      assert.equal(log.record({ ...refusal('a'), target: 'bad\ntarget' }, T0), 'written')
      await log.settled()
      assert.equal(errors.length, 1)
      assert.match(String(errors[0]), /target must be/)
      assert.throws(() => new BlockedRequestLog({ audit: new AuditLog(db), windowMs: 0 }), /windowMs/)
    })
  })
}
