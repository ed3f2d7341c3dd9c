#!/usr/bin/env node
/**
 * The `metanode` command: start a hub, make a key pair, enrol and manage principals.
 */
import { parseArgs } from 'node:util'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import { startHub } from './hub.js'
import type { HubConfigInput } from './config.js'
import { MetanodeError } from './errors.js'
import { principalIdFromPublicKey } from './protocol/index.js'
import { openPostgres } from './store/database.js'
import { copySqliteRecords } from './store/copy-records.js'
import { AuditLog } from './cage/audit.js'

const USAGE = `Usage: metanode <command> [options]

Commands:
  start      Start a hub
             --host H            interface to bind (default 0.0.0.0)
             --mqtt-port P       MQTT over TCP (default 1883)
             --http-port Q       HTTP API, dashboard and MQTT over WebSocket (default 8080)
             --data-dir DIR      SQLite file, admin token and node key (default ./data)
             --config FILE       JSON config file (flags win over it)
             --tls-cert F --tls-key F --tls-port P   MQTT over TLS
             --allow-anonymous   development mode: admit clients without credentials
             --log-level L       fatal|error|warn|info|debug|trace|silent
             --cluster URL       serve one fleet with other hub processes through this Redis
                                 (redis://host:port) (docs/operations.md)
             --database URL      keep the records in this PostgreSQL database (postgres://…)
                                 instead of the SQLite file in --data-dir: what processes on
                                 several hosts share. MN_DATABASE_URL keeps the password out of ps.
             --broker-persistence durable|memory
                                 MQTT sessions and queues in SQLite (default) or in memory
  keygen     Make an ed25519 key pair and write it to a file
             --out FILE          where to write it (default ./device-key.json, mode 0600)
  enroll     Enrol a principal with a running hub
             --key FILE | --public-key HEX
             --role device|service|node (default device)   --name NAME
  devices    List principals; 'devices get ID'; 'devices revoke ID'
             --role R   --revoked true|false
  copy-records  Copy a stopped hub's records from <--data-dir>/metanode.db into an empty
             PostgreSQL database (--database URL or MN_DATABASE_URL), for a fleet moving to
             several hosts; checks the copied audit chain

enroll and devices talk to --url (default http://localhost:8080) with the admin token from
--token, MN_ADMIN_TOKEN, or <--data-dir>/admin-token.
`

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start': return start(rest)
    case 'keygen': return keygen(rest)
    case 'enroll': return enroll(rest)
    case 'devices': return devices(rest)
    case 'copy-records': return copyRecords(rest)
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE)
      return command === undefined ? 1 : 0
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`)
      return 1
  }
}

async function start (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string' },
      'mqtt-port': { type: 'string' },
      'http-port': { type: 'string' },
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-port': { type: 'string' },
      'allow-anonymous': { type: 'boolean' },
      'log-level': { type: 'string' },
      cluster: { type: 'string' },
      database: { type: 'string' },
      'broker-persistence': { type: 'string' },
    },
    strict: true,
  })
  const fromFile = values.config ? JSON.parse(readFileSync(values.config, 'utf8')) as HubConfigInput : {}
  const input: HubConfigInput = {
    ...fromFile,
    host: values.host ?? fromFile.host,
    mqttPort: toPort(values['mqtt-port']) ?? fromFile.mqttPort,
    httpPort: toPort(values['http-port']) ?? fromFile.httpPort,
    dataDir: values['data-dir'] ?? fromFile.dataDir,
    allowAnonymous: values['allow-anonymous'] ?? fromFile.allowAnonymous,
    logLevel: (values['log-level'] as HubConfigInput['logLevel']) ?? fromFile.logLevel,
    adminToken: process.env.MN_ADMIN_TOKEN ?? fromFile.adminToken,
    cluster: values.cluster ? { ...fromFile.cluster, redisUrl: values.cluster } : fromFile.cluster,
    databaseUrl: values.database ?? process.env.MN_DATABASE_URL ?? fromFile.databaseUrl,
    brokerPersistence: (values['broker-persistence'] as HubConfigInput['brokerPersistence']) ?? fromFile.brokerPersistence,
  }
  if (values['tls-cert'] || values['tls-key']) {
    input.tls = { certFile: values['tls-cert'] ?? '', keyFile: values['tls-key'] ?? '', port: toPort(values['tls-port']) ?? 8883 }
  }
  const hub = await startHub(input)
  await new Promise<void>(resolve => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  await hub.close()
  return 0
}

function keygen (args: string[]): number {
  const { values } = parseArgs({ args, options: { out: { type: 'string' } }, strict: true })
  const out = values.out ?? 'device-key.json'
  if (existsSync(out)) {
    process.stderr.write(`${out} exists; refusing to overwrite a key\n`)
    return 1
  }
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' })
  const publicKey = Buffer.from(jwk.x as string, 'base64url')
  const id = principalIdFromPublicKey(publicKey)
  const file = { id, publicKey: publicKey.toString('hex'), secretKey: Buffer.from(jwk.d as string, 'base64url').toString('hex') }
  writeFileSync(out, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'wx' })
  process.stdout.write(`wrote ${out}\nid        ${id}\npublicKey ${file.publicKey}\n`)
  return 0
}

interface AdminOptions { url: string, token: string }

function adminOptions (values: { url?: string, token?: string, 'data-dir'?: string }): AdminOptions {
  const url = (values.url ?? 'http://localhost:8080').replace(/\/$/, '')
  let token = values.token ?? process.env.MN_ADMIN_TOKEN
  if (!token) {
    const file = join(values['data-dir'] ?? './data', 'admin-token')
    if (!existsSync(file)) throw new MetanodeError('MN_ERR_NO_TOKEN', `no admin token: pass --token, set MN_ADMIN_TOKEN, or run where ${file} exists`, 401)
    token = readFileSync(file, 'utf8').trim()
  }
  return { url, token }
}

const ADMIN_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
} as const

async function api (admin: AdminOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(admin.url + path, {
    method,
    headers: { authorization: `Bearer ${admin.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  const json = text ? JSON.parse(text) as Record<string, unknown> : {}
  if (!res.ok) throw new MetanodeError(String(json.code ?? 'MN_ERR_HTTP'), `${method} ${path}: ${res.status} ${String(json.message ?? text)}`, res.status)
  return json
}

async function copyRecords (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'data-dir': { type: 'string' }, database: { type: 'string' } }, strict: true })
  const url = values.database ?? process.env.MN_DATABASE_URL
  if (!url) {
    process.stderr.write('copy-records needs --database postgres://… or MN_DATABASE_URL\n')
    return 1
  }
  const file = join(values['data-dir'] ?? './data', 'metanode.db')
  const target = await openPostgres({ url })
  try {
    const { rows } = await copySqliteRecords(file, target)
    for (const [table, n] of Object.entries(rows)) process.stdout.write(`${table}: ${n} rows\n`)
    const chain = await new AuditLog(target).verify()
    if (!chain.ok) {
      process.stderr.write(`the copied audit chain is broken at seq ${chain.brokenAt}: ${chain.reason}\n`)
      return 1
    }
    process.stdout.write(`audit chain verified: ${chain.entries} entries${chain.head ? `, head ${chain.head.hash}` : ''}\n`)
    return 0
  } finally {
    await target.close()
  }
}

async function enroll (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...ADMIN_OPTIONS, key: { type: 'string' }, 'public-key': { type: 'string' }, role: { type: 'string' }, name: { type: 'string' } },
    strict: true,
  })
  const publicKey = values['public-key'] ?? (values.key ? (JSON.parse(readFileSync(values.key, 'utf8')) as { publicKey: string }).publicKey : undefined)
  if (!publicKey) {
    process.stderr.write('enroll needs --key FILE or --public-key HEX\n')
    return 1
  }
  const record = await api(adminOptions(values), 'POST', '/v1/devices', { publicKey, role: values.role ?? 'device', ...(values.name ? { name: values.name } : {}) })
  process.stdout.write(JSON.stringify(record, null, 2) + '\n')
  return 0
}

async function devices (args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...ADMIN_OPTIONS, role: { type: 'string' }, revoked: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const admin = adminOptions(values)
  const [action = 'list', id] = positionals
  if ((action === 'get' || action === 'revoke') && !id) {
    process.stderr.write(`devices ${action} needs an id\n`)
    return 1
  }
  if (action === 'get') {
    process.stdout.write(JSON.stringify(await api(admin, 'GET', `/v1/devices/${encodeURIComponent(id)}`), null, 2) + '\n')
    return 0
  }
  if (action === 'revoke') {
    process.stdout.write(JSON.stringify(await api(admin, 'DELETE', `/v1/devices/${encodeURIComponent(id)}`), null, 2) + '\n')
    return 0
  }
  if (action !== 'list') {
    process.stderr.write(`unknown devices action "${action}"\n`)
    return 1
  }
  let after: string | undefined
  do {
    const query = new URLSearchParams({ limit: '500' })
    if (values.role) query.set('role', values.role)
    if (values.revoked) query.set('revoked', values.revoked)
    if (after) query.set('after', after)
    const page = await api(admin, 'GET', `/v1/devices?${query}`) as { items: Array<{ id: string, role: string, name: string | null, revoked: number | null }>, next: string | null }
    for (const p of page.items) {
      process.stdout.write(`${p.id}  ${p.role.padEnd(7)}  ${p.revoked ? 'revoked' : 'active '}  ${p.name ?? ''}\n`)
    }
    after = page.next ?? undefined
  } while (after)
  return 0
}

function toPort (value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const port = Number(value)
  if (!Number.isInteger(port)) throw new MetanodeError('MN_ERR_CONFIG', `not a port: ${value}`, 400)
  return port
}

main(process.argv.slice(2)).then(code => { process.exitCode = code }, err => {
  process.stderr.write(`metanode: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
