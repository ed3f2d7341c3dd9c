import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import {
  AuditLog, GENESIS_HASH, actorOf, auditHash, canonicalAuditLine, type AuditEntry,
} from '../../src/cage/audit.js'
import { openPostgres } from '../../src/store/index.js'
import { postgresEngine, sharedDatabase, sqlEngines, testPostgres } from '../helpers/sql-engines.js'
import { tamper } from './helpers.js'

async function fill (audit: AuditLog, n: number, startMs = 1_700_000_000_000): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = []
  for (let i = 0; i < n; i++) {
    entries.push(await audit.append({
      actor: i % 3 === 0 ? 'admin' : `principal:${'a'.repeat(32)}`,
      action: i % 2 === 0 ? 'principal.enrol' : 'policy.update',
      target: `t${i % 4}`,
      source: i % 5 === 0 ? null : '127.0.0.1',
      detail: { i },
      nowMs: startMs + i * 1000,
    }))
  }
  return entries
}

test('actorOf names HTTP identities', () => {
  assert.equal(actorOf({ kind: 'admin' }), 'admin')
  assert.equal(actorOf({ kind: 'anonymous' }), 'anonymous')
  assert.equal(actorOf({ kind: 'principal', id: 'f'.repeat(32), role: 'node' }), `principal:${'f'.repeat(32)}`)
  assert.equal(actorOf(null), 'anonymous')
})

for (const engine of sqlEngines()) {
  describe(`the audit log on ${engine.name}`, { skip: engine.skip }, () => {
    test('append chains entries: seq from 1, each prev_hash the hash before, hash over the canonical line', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      assert.equal(await audit.head(), null)
      assert.deepEqual(await audit.verify(), { ok: true, entries: 0, head: null })
      const first = await audit.append({ actor: 'admin', action: 'principal.enrol', target: 'abc', source: '192.0.2.1', detail: { role: 'device', name: 'pump ü' }, nowMs: 1234 })
      assert.equal(first.seq, 1)
      assert.equal(first.prevHash, GENESIS_HASH)
      assert.deepEqual(first.detail, { role: 'device', name: 'pump ü' })
      // The canonical line, built by hand from the definition.
      const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex').toUpperCase()
      const line = `mn-audit-v1|1|1234|${hex('admin')}|${hex('principal.enrol')}|${hex('abc')}|${hex('192.0.2.1')}|${hex('{"role":"device","name":"pump ü"}')}|${GENESIS_HASH}`
      assert.equal(canonicalAuditLine({ ...first, detail: '{"role":"device","name":"pump ü"}' }), line)
      assert.equal(first.hash, createHash('sha256').update(line).digest('hex'))
      const second = await audit.append({ actor: 'hub', action: 'security.alert' })
      assert.equal(second.seq, 2)
      assert.equal(second.prevHash, first.hash)
      assert.equal(second.target, null)
      assert.equal(second.source, null)
      assert.deepEqual(second.detail, {})
      assert.equal(second.hash, auditHash(canonicalAuditLine({ ...second, detail: '{}' })))
      assert.deepEqual(await audit.head(), { seq: 2, hash: second.hash })
      assert.deepEqual(await audit.verify(), { ok: true, entries: 2, head: { seq: 2, hash: second.hash } })
      assert.deepEqual(await audit.get(1), first)
      // NULL and '' are different values and different lines.
      assert.notEqual(canonicalAuditLine({ ...first, target: null, detail: '{}' }), canonicalAuditLine({ ...first, target: '', detail: '{}' }))
    })

    test('append joins the caller\'s transaction: it commits or rolls back with it', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      await audit.append({ actor: 'hub', action: 'hub.start' })
      await assert.rejects(db.transaction(async () => {
        await audit.append({ actor: 'admin', action: 'principal.revoke', target: 'x' })
        throw new Error('the change failed')
      }), /the change failed/)
      assert.equal((await audit.head())!.seq, 1)
      await db.transaction(async () => {
        await audit.append({ actor: 'admin', action: 'principal.revoke', target: 'x' })
        await audit.append({ actor: 'admin', action: 'principal.revoke', target: 'y' })
      })
      assert.equal((await audit.head())!.seq, 3)
      assert.equal((await audit.verify()).ok, true)
    })

    test('the triggers refuse UPDATE and DELETE through the hub\'s connection', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      await audit.append({ actor: 'hub', action: 'hub.start' })
      await assert.rejects(db.run("UPDATE audit_log SET actor = 'x'"), /append-only/)
      await assert.rejects(db.run('DELETE FROM audit_log'), /append-only/)
    })

    test('append refuses malformed input as a caller bug', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      const cases: Array<[Parameters<AuditLog['append']>[0], RegExp]> = [
        [{ actor: '', action: 'a.b' }, /actor must be a string of 1 to 128/],
        [{ actor: 'a\nb', action: 'a.b' }, /actor .* without control characters/],
        [{ actor: 'admin', action: 'Policy.Create' }, /action must be dotted lower-case words/],
        [{ actor: 'admin', action: 'policy..create' }, /action must be/],
        [{ actor: 'admin', action: 'a.b', target: 'x'.repeat(513) }, /target must be a string of 1 to 512/],
        [{ actor: 'admin', action: 'a.b', detail: [] as unknown as Record<string, unknown> }, /detail must be a plain object/],
        [{ actor: 'admin', action: 'a.b', detail: { big: 'x'.repeat(1024 * 1024) } }, /at most 1048576 bytes/],
        [{ actor: 'admin', action: 'a.b', nowMs: -1 }, /nowMs must be a non-negative integer/],
      ]
      for (const [input, message] of cases) await assert.rejects(audit.append(input), message)
      assert.equal(await audit.head(), null, 'nothing was written')
    })

    test('list filters by action (exact or prefix), actor, target and time, and pages by seq both ways', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      const all = await fill(audit, 30)
      const seqs = (entries: AuditEntry[]) => entries.map(entry => entry.seq)
      assert.deepEqual(seqs(await audit.list({ limit: 5 })), [1, 2, 3, 4, 5])
      assert.deepEqual(seqs(await audit.list({ limit: 5, after: 5 })), [6, 7, 8, 9, 10])
      assert.deepEqual(seqs(await audit.list({ limit: 3, order: 'desc' })), [30, 29, 28])
      assert.deepEqual(seqs(await audit.list({ limit: 3, order: 'desc', before: 28 })), [27, 26, 25])
      assert.deepEqual(seqs(await audit.list({ limit: 100, action: 'policy.update' })), seqs(all.filter(e => e.action === 'policy.update')))
      assert.deepEqual(seqs(await audit.list({ limit: 100, action: 'policy.*' })), seqs(all.filter(e => e.action.startsWith('policy.'))))
      assert.deepEqual(seqs(await audit.list({ limit: 100, action: 'principal.*' })), seqs(all.filter(e => e.action.startsWith('principal.'))))
      assert.deepEqual(await audit.list({ limit: 100, action: 'polic.*' }), [])
      assert.deepEqual(seqs(await audit.list({ limit: 100, actor: 'admin' })), seqs(all.filter(e => e.actor === 'admin')))
      assert.deepEqual(seqs(await audit.list({ limit: 100, target: 't1', actor: 'admin' })), seqs(all.filter(e => e.target === 't1' && e.actor === 'admin')))
      const since = all[10].ts
      const until = all[20].ts
      assert.deepEqual(seqs(await audit.list({ limit: 100, since, until })), seqs(all.slice(10, 20)))
      assert.deepEqual(seqs(await audit.list({ limit: 2, since, until, after: 15, action: 'principal.enrol' })), [17, 19])
      assert.deepEqual((await audit.list({ limit: 1 }))[0], all[0])
      await assert.rejects(audit.list({ limit: 0 }), /limit must be an integer from 1 to 10000/)
      await assert.rejects(audit.list({ limit: 10_001 }), /limit must be/)
      await assert.rejects(audit.list({ limit: 1, after: -1 }), /after must be a non-negative integer/)
    })

    test('verify finds a detail edited behind the hub\'s back, at that entry', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      await fill(audit, 10)
      await tamper(db, 'UPDATE audit_log SET detail = ? WHERE seq = 4', '{"i":99}')
      assert.deepEqual(await audit.verify(), { ok: false, brokenAt: 4, reason: 'hash does not match the entry\'s fields: the entry was altered after it was written', entries: 3 })
      assert.deepEqual(await audit.verify({ batchRows: 3 }), await audit.verify())
    })

    test('verify finds every other kind of edit', async (t) => {
      const cases: Array<[string, string, string[], number, RegExp]> = [
        ['a deleted entry', 'DELETE FROM audit_log WHERE seq = 6', [], 7, /seq 7 follows 5: entries 6 to 6 are missing/],
        ['deleted first entries', 'DELETE FROM audit_log WHERE seq <= 2', [], 3, /starts at seq 3: entries 1 to 2 are missing/],
        ['a changed time', 'UPDATE audit_log SET ts_ms = ts_ms + 1 WHERE seq = 8', [], 8, /hash does not match/],
        ['a changed actor', "UPDATE audit_log SET actor = 'hub' WHERE seq = 1", [], 1, /hash does not match/],
        ['a NULL source made empty', "UPDATE audit_log SET source = '' WHERE seq = 6", [], 6, /hash does not match/],
        ['a broken link', 'UPDATE audit_log SET prev_hash = ? WHERE seq = 3', ['f'.repeat(64)], 3, /prev_hash is not the hash of entry 2/],
      ]
      for (const [name, sql, params, brokenAt, reason] of cases) {
        await t.test(name, async (t) => {
          const db = await engine.open(t)
          const audit = new AuditLog(db)
          await fill(audit, 10)
          await tamper(db, sql, ...params)
          const result = await audit.verify()
          assert.equal(result.ok, false, name)
          assert.equal(!result.ok && result.brokenAt, brokenAt)
          assert.match(!result.ok ? result.reason : '', reason)
          assert.deepEqual(await audit.verify({ batchRows: 4 }), result)
        })
      }
    })

    test('an entry rewritten with a recomputed hash breaks the link of the next one', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      const entries = await fill(audit, 5)
      const forged = { ...entries[2], detail: '{"i":"forged"}' }
      const hash = auditHash(canonicalAuditLine(forged))
      await tamper(db, 'UPDATE audit_log SET detail = ?, hash = ? WHERE seq = 3', forged.detail, hash)
      const result = await audit.verify()
      assert.equal(result.ok, false)
      assert.equal(!result.ok && result.brokenAt, 4)
      assert.match(!result.ok ? result.reason : '', /prev_hash is not the hash of entry 3/)
    })

    test('an anchor kept elsewhere catches a log cut short or rewritten from some entry on', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      await fill(audit, 6)
      const anchor = (await audit.head())!
      assert.deepEqual(await audit.verify({ anchor }), { ok: true, entries: 6, head: anchor })
      await tamper(db, 'DELETE FROM audit_log WHERE seq >= 5')
      assert.equal((await audit.verify()).ok, true, 'a chain alone cannot see its tail cut off')
      const cut = await audit.verify({ anchor })
      assert.equal(cut.ok, false)
      assert.equal(!cut.ok && cut.brokenAt, 6)
      assert.match(!cut.ok ? cut.reason : '', /anchored entry 6 is missing/)
      // Appending after the cut gives seq 5 a new hash: the anchor at 6 still disagrees.
      await audit.append({ actor: 'hub', action: 'x.y' })
      await audit.append({ actor: 'hub', action: 'x.y' })
      const rewritten = await audit.verify({ anchor })
      assert.match(!rewritten.ok ? rewritten.reason : '', /entry 6 has hash .* not the anchored/)
      await assert.rejects(audit.verify({ anchor: { seq: 0, hash: 'x' } }), /anchor must be/)
    })

    test('verify walks a long chain in batches, whatever the batch size', async (t) => {
      const db = await engine.open(t)
      const audit = new AuditLog(db)
      await db.transaction(() => fill(audit, 2_500))
      const result = await audit.verify({ batchRows: 1_000 })
      assert.deepEqual(result, await audit.verify())
      assert.equal(result.ok && result.entries, 2_500)
    })
  })
}

describe('the audit log of a fleet on one PostgreSQL database', { skip: postgresEngine.skip }, () => {
  test('hub processes appending at once extend one chain, without a fork or a gap', async t => {
    const { connect } = await sharedDatabase(postgresEngine, t)
    const connections = [await connect(), await connect(), await connect()]
    const logs = connections.map(db => new AuditLog(db))
    await Promise.all(logs.flatMap((audit, p) => Array.from({ length: 30 }, (_, i) =>
      audit.append({ actor: `principal:${String(p).repeat(32)}`, action: 'state.update', target: `d${i}` }))))
    const result = await logs[0].verify()
    assert.equal(result.ok, true)
    assert.equal(result.ok && result.entries, 90)
    assert.deepEqual(await logs[2].head(), result.ok ? result.head : null)
  })

  test('the psql query of docs/http-cage.md verifies the chain and finds a tampered entry, as the hub does', async t => {
    const url = await (await testPostgres()).createDatabase()
    const db = await openPostgres({ url })
    t.after(() => db.close())
    const audit = new AuditLog(db)
    const doc = readFileSync(new URL('../../docs/http-cage.md', import.meta.url), 'utf8')
    const query = /### With psql[\s\S]*?```sql\n([\s\S]*?)```/.exec(doc)?.[1]
    assert.ok(query, 'the doc has the psql query')
    const psql = (): string => {
      const run = spawnSync('psql', [url, '-At', '-v', 'ON_ERROR_STOP=1', '-c', query], { encoding: 'utf8' })
      assert.equal(run.status, 0, run.stderr)
      return run.stdout.trim()
    }
    assert.equal(psql(), `ok: 0 entries, head ${GENESIS_HASH}`)
    await audit.append({ actor: 'principal:' + 'a'.repeat(32), action: 'security.alert', target: 'pipe|in target', source: null, detail: { text: 'line\nbreak\ttab \u2028 😀 ü', n: 1.5 } })
    await audit.append({ actor: 'hub', action: 'hub.start' })
    await fill(audit, 10)
    const head = (await audit.head())!
    assert.equal(psql(), `ok: 12 entries, head ${head.hash}`)
    await tamper(db, "UPDATE audit_log SET detail = replace(detail, 'break', 'brake') WHERE seq = 1")
    assert.equal(psql(), 'broken at seq 1')
    assert.equal((await audit.verify()).ok === false, true, 'the hub agrees')
  })
})
