/**
 * docs/http-cage.md stays true: its rule examples validate, and the two auditor scripts it
 * gives verify a real hub database and find a tampered entry.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { AuditLog } from '../../src/cage/audit.js'
import { PolicyStore } from '../../src/cage/policy-store.js'
import { validateRule, validateRuleSet } from '../../src/cage/policy.js'
import { tamper, tempDb } from './helpers.js'

const DOC = readFileSync(new URL('../../docs/http-cage.md', import.meta.url), 'utf8')

function codeBlocks (language: string): string[] {
  return [...DOC.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map(m => m[1])
}

function blockAfter (heading: string, language: string): string {
  const at = DOC.indexOf(heading)
  assert.ok(at !== -1, `the doc has "${heading}"`)
  const block = /```(\w+)\n([\s\S]*?)```/.exec(DOC.slice(at))
  assert.ok(block && block[1] === language, `a ${language} block follows "${heading}"`)
  return block[2]
}

function has (command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0
}

test('the rule examples in the doc validate', () => {
  let checked = 0
  for (const text of codeBlocks('json')) {
    const value = JSON.parse(text)
    if (Array.isArray(value.rules)) {
      validateRuleSet(value.rules)
      checked++
    } else if (value.match !== undefined) {
      validateRule(value)
      checked++
    }
  }
  assert.ok(checked >= 4, `checked ${checked} examples`)
})

/** A database with entries of every shape: NULLs, non-ASCII, separators and quotes in fields. */
async function auditedDb (t: Parameters<typeof tempDb>[0]) {
  const temp = await tempDb(t)
  const audit = new AuditLog(temp.sql)
  const store = await PolicyStore.open(temp.sql, { audit })
  t.after(() => store.close())
  await store.create({ id: 'x', match: { path: '/x', headers: { 'x-a': '/a|b/' } }, action: { type: 'block', reason: 'çà ne va pas | "non"' } }, 1, { actor: 'admin', source: '::1' })
  await audit.append({ actor: 'principal:' + 'a'.repeat(32), action: 'security.alert', target: 'pipe|in target', source: null, detail: { text: 'line\nbreak\ttab \u2028 😀', n: 1.5 } })
  await audit.append({ actor: 'hub', action: 'hub.start' })
  for (let i = 0; i < 20; i++) await audit.append({ actor: 'admin', action: 'principal.enrol', target: `p${i}`, source: '192.0.2.1', detail: { i } })
  return { ...temp, audit }
}

test('the sqlite3 + sha256sum script verifies the chain and finds a tampered entry', async (t) => {
  if (!has('sqlite3') || !has('sha256sum')) return t.skip('sqlite3 or sha256sum is not installed')
  const { file, sql, audit } = await auditedDb(t)
  const script = blockAfter('### With sqlite3 and sha256sum', 'sh')
  const run = () => spawnSync('sh', ['-c', script], { env: { ...process.env, DB: file }, encoding: 'utf8' })
  const ok = run()
  const head = (await audit.head())!
  assert.equal(ok.status, 0, ok.stderr + ok.stdout)
  assert.equal(ok.stdout.trim(), `ok: ${head.seq} entries, head ${head.hash}`)
  await tamper(sql, "UPDATE audit_log SET detail = replace(detail, 'break', 'brake') WHERE seq = 3")
  const broken = run()
  assert.equal(broken.status, 1)
  assert.equal(broken.stdout.trim(), 'broken at seq 3: hash')
  const verdict = await audit.verify()
  assert.equal(!verdict.ok && verdict.brokenAt, 3, 'the hub agrees')
})

test('the Python script verifies the chain and finds a removed entry', async (t) => {
  if (!has('python3')) return t.skip('python3 is not installed')
  const { file, sql, audit } = await auditedDb(t)
  const script = blockAfter('### With Python', 'python')
  const run = () => spawnSync('python3', ['-c', script, file], { encoding: 'utf8' })
  const ok = run()
  const head = (await audit.head())!
  assert.equal(ok.status, 0, ok.stderr + ok.stdout)
  assert.equal(ok.stdout.trim(), `ok: ${head.seq} entries, head ${head.hash}`)
  await tamper(sql, 'DELETE FROM audit_log WHERE seq = 10')
  const broken = run()
  assert.equal(broken.status, 1)
  assert.equal(broken.stderr.trim(), 'broken at seq 11')
  const result = await audit.verify()
  assert.equal(!result.ok && result.brokenAt, 11, 'the hub agrees')
})
