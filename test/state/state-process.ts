/**
 * A second hub process for the state tests, to race against the test's own: it opens the
 * database named on its command line (a PostgreSQL URL, or a SQLite file), says `ready`,
 * and for each line on stdin, a JSON array of changes, makes them all at once through a
 * state service of its own and answers with one line, their outcomes in order. It ends
 * when stdin does.
 */
import { createInterface } from 'node:readline'
import { pino } from 'pino'
import { openPostgres, openSqlite, type SqlDatabase } from '../../src/store/index.js'
import { createStateService } from '../../src/state/service.js'
import { StateVersionConflictError } from '../../src/state/errors.js'
import { HUB_ID, LIMITS, type RaceChange, type RaceOutcome } from './helpers.js'

const target = process.argv[2]
const db: SqlDatabase = target.startsWith('postgres://') ? await openPostgres({ url: target }) : openSqlite(target)
const state = createStateService({ db, log: pino({ level: 'silent' }), limits: LIMITS, hubId: HUB_ID, publishDown: async () => {} })

async function make (change: RaceChange): Promise<RaceOutcome> {
  try {
    const document = change.section === 'desired'
      ? await state.patchDesired(change.deviceId, change.patch, change.expectedVersion)
      : await state.report(change.deviceId, change.patch)
    return { ok: true, version: document.version }
  } catch (err) {
    if (err instanceof StateVersionConflictError) return { ok: false, conflictAt: err.currentVersion }
    return { ok: false, error: String(err) }
  }
}

process.stdout.write('ready\n')
for await (const line of createInterface({ input: process.stdin })) {
  const outcomes = await Promise.all((JSON.parse(line) as RaceChange[]).map(make))
  process.stdout.write(JSON.stringify(outcomes) + '\n')
}
await state.close()
await db.close()
