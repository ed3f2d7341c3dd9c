/**
 * Change counters: processes that share one database and cache what is in it (the policy
 * rules, the ZK tree) bump a named counter in the transaction of every change, and read it
 * to learn, with one cheap query on either engine, whether another process changed it.
 */
import type { SqlDatabase } from './sql.js'

/** Adds one to counter `name`; call it inside the change's transaction. */
export async function bumpChangeCounter (db: SqlDatabase, name: string): Promise<void> {
  await db.run('INSERT INTO change_counters (name, n) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET n = change_counters.n + 1', [name])
}

/** The counter's value: 0 until the first change. */
export async function readChangeCounter (db: SqlDatabase, name: string): Promise<number> {
  return (await db.get<{ n: number }>('SELECT n FROM change_counters WHERE name = ?', [name]))?.n ?? 0
}
