// Build, check and key-ceremony script of the claim circuit (circuits/claim.circom).
//
//   npm run circuits:build                  compile + deterministic DEVELOPMENT setup, writes
//                                           circuits/build/* and circuits/SHA256SUMS
//   npm run circuits:check                  recompile into a temporary directory and compare the
//                                           r1cs/wasm with SHA256SUMS; check the committed files'
//                                           hashes and that the verification key is the zkey's
//   npm run circuits:verify-setup           regenerate the development powers of tau and run
//                                           `snarkjs zkey verify` on the committed r1cs and zkey
//   npm run circuits:ceremony -- --entropy "<long random text>" [--ptau trusted.ptau] [--name who]
//                                           PRODUCTION keys: random phase-1 (or a trusted ptau)
//                                           and a random phase-2 contribution; installs them
//
// Everything runs offline from npm packages: circom2 (the circom compiler built to wasm),
// circomlib and snarkjs. See docs/zklock.md.

import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual, parseArgs } from 'node:util'
import * as snarkjs from 'snarkjs'

const require = createRequire(import.meta.url)
const CIRCUITS = dirname(fileURLToPath(import.meta.url))
const ROOT = dirname(CIRCUITS)
const BUILD = join(CIRCUITS, 'build')
const SUMS = join(CIRCUITS, 'SHA256SUMS')
const CACHE = join(CIRCUITS, '.cache')
const CIRCUIT = 'claim'

/** 2^13 = 8192 >= 5294 constraints + 4 public inputs + 1. Raise it if the circuit grows. */
const PTAU_POWER = 13
/** Public, fixed beacons of the DEVELOPMENT setup: anyone can recompute its toxic waste. */
const DEV_PTAU_BEACON = sha256hex('metanode claim circuit: development powers of tau beacon v1')
const DEV_ZKEY_BEACON = sha256hex('metanode claim circuit: development phase-2 beacon v1')
const BEACON_ITERATIONS_EXP = 10

/** The files committed in circuits/build and listed in SHA256SUMS (paths relative to circuits/). */
const COMPILED = ['build/claim.r1cs', 'build/claim.wasm'] as const
const KEYS = ['build/claim_final.zkey', 'build/verification_key.json', 'build/setup.json'] as const

type Logger = { info: (m: string) => void; debug: (m: string) => void; warn: (m: string) => void; error: (m: string) => void }
const verbose = process.env.CIRCUITS_VERBOSE === '1'
const logger: Logger = {
  info: m => {
    if (verbose) console.log(`  snarkjs: ${m}`)
  },
  debug: () => {},
  warn: m => console.warn(`  snarkjs: ${m}`),
  error: m => console.error(`  snarkjs: ${m}`),
}

function sha256hex(s: string | Uint8Array): string {
  return createHash('sha256').update(s).digest('hex')
}
function fileHash(path: string): string {
  return sha256hex(readFileSync(path))
}
function step<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now()
  process.stdout.write(`${label} ...`)
  return f().then(r => {
    console.log(` ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    return r
  })
}
/** snarkjs reports many failures by returning false/-1 instead of throwing. */
function ok<T>(r: T, what: string): T {
  if (r === false || (r as unknown) === -1) throw new Error(`snarkjs: ${what} failed`)
  return r
}
function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

/** Compiles claim.circom into `outDir` and returns the paths of the r1cs, wasm and sym files. */
function compile(outDir: string): { r1cs: string; wasm: string; sym: string } {
  mkdirSync(outDir, { recursive: true })
  const cli = require.resolve('circom2/cli.js')
  // circom2 runs under WASI with the working directory's ancestors preopened: run it from the
  // repository root with relative paths, so the outputs do not depend on where the checkout is.
  const r = spawnSync(
    process.execPath,
    [cli, relative(ROOT, join(CIRCUITS, `${CIRCUIT}.circom`)), '--r1cs', '--wasm', '--sym', '--O2', '-l', 'node_modules', '-o', relative(ROOT, outDir)],
    { cwd: ROOT, encoding: 'utf8' },
  )
  if (r.status !== 0 || !/Everything went okay/.test(r.stdout)) {
    throw new Error(`circom2 failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`)
  }
  if (verbose) console.log(r.stdout)
  const jsDir = join(outDir, `${CIRCUIT}_js`)
  // Keep a flat layout: the wasm next to the r1cs. snarkjs computes witnesses with its own
  // witness calculator, so circom's generate_witness.js/witness_calculator.js are not needed.
  renameSync(join(jsDir, `${CIRCUIT}.wasm`), join(outDir, `${CIRCUIT}.wasm`))
  rmSync(jsDir, { recursive: true, force: true })
  return { r1cs: join(outDir, `${CIRCUIT}.r1cs`), wasm: join(outDir, `${CIRCUIT}.wasm`), sym: join(outDir, `${CIRCUIT}.sym`) }
}

function readSums(): Map<string, string> {
  const m = new Map<string, string>()
  for (const line of readFileSync(SUMS, 'utf8').split('\n')) {
    const hit = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.trim())
    if (hit) m.set(hit[2], hit[1])
  }
  return m
}
function writeSums(): void {
  const lines = [...COMPILED, ...KEYS].map(p => `${fileHash(join(CIRCUITS, p))}  ${p}`)
  writeFileSync(SUMS, lines.join('\n') + '\n')
}

/**
 * Deterministic powers of tau of size 2^PTAU_POWER: a new accumulator and one public beacon,
 * prepared for phase 2. Preparing takes minutes, so the result is cached (not committed) in
 * circuits/.cache/ and reused while its hash is the one setup.json records.
 */
async function devPtau(): Promise<string> {
  const cached = join(CACHE, `pot${PTAU_POWER}_dev_final.ptau`)
  const previous = existsSync(join(BUILD, 'setup.json'))
    ? (JSON.parse(readFileSync(join(BUILD, 'setup.json'), 'utf8')) as { kind?: string; ptauPower?: number; ptau?: { sha256?: string } })
    : undefined
  const want = previous?.kind === 'development' && previous.ptauPower === PTAU_POWER ? previous.ptau?.sha256 : undefined
  if (existsSync(cached) && want && fileHash(cached) === want) {
    console.log(`powers of tau: reusing ${relative(ROOT, cached)}`)
    return cached
  }
  mkdirSync(CACHE, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'metanode-ptau-'))
  try {
    const pf = await makeDevPtau(dir)
    copyFileSync(pf, cached)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  if (want && fileHash(cached) !== want) throw new Error(`the regenerated development ptau's hash differs from setup.json's (${want})`)
  return cached
}

async function makeDevPtau(dir: string): Promise<string> {
  const curve = await snarkjs.curves.getCurveFromName('bn128')
  const p0 = join(dir, 'pot_0000.ptau')
  const p1 = join(dir, 'pot_beacon.ptau')
  const pf = join(dir, 'pot_final.ptau')
  await step(`powers of tau: new 2^${PTAU_POWER}`, async () => ok(await snarkjs.powersOfTau.newAccumulator(curve, PTAU_POWER, p0, logger), 'powersoftau new'))
  await step('powers of tau: beacon', async () =>
    ok(await snarkjs.powersOfTau.beacon(p0, p1, 'metanode development beacon', DEV_PTAU_BEACON, BEACON_ITERATIONS_EXP, logger), 'powersoftau beacon'),
  )
  await step('powers of tau: prepare phase 2', async () => ok(await snarkjs.powersOfTau.preparePhase2(p1, pf, logger), 'powersoftau prepare phase2'))
  return pf
}

async function exportVkey(zkey: string, out: string): Promise<void> {
  const vk = ok(await snarkjs.zKey.exportVerificationKey(zkey, logger), 'zkey export verificationkey')
  writeFileSync(out, JSON.stringify(vk, null, 1) + '\n')
}

function setupRecord(kind: 'development' | 'production', extra: Record<string, unknown>): void {
  const record = {
    kind,
    warning:
      kind === 'development'
        ? 'DEVELOPMENT KEYS: made from public beacons only; anyone can recompute the toxic waste and forge proofs. Never use in production; run `npm run circuits:ceremony`.'
        : 'PRODUCTION KEYS: the hub and every device must use exactly these files (compare the SHA-256 of claim_final.zkey and verification_key.json).',
    circuit: 'circuits/claim.circom',
    depth: 20,
    publicSignals: ['root', 'nullifierHash', 'signalHash', 'epoch'],
    ptauPower: PTAU_POWER,
    r1csSha256: fileHash(join(BUILD, `${CIRCUIT}.r1cs`)),
    tools: { circom2: packageVersion('circom2'), circomlib: packageVersion('circomlib'), snarkjs: packageVersion('snarkjs') },
    ...extra,
  }
  writeFileSync(join(BUILD, 'setup.json'), JSON.stringify(record, null, 2) + '\n')
}

async function build(): Promise<void> {
  const t0 = performance.now()
  const { sym } = await step('compile (circom2 --O2)', async () => compile(BUILD))
  rmSync(sym, { force: true }) // debugging symbols: not committed (npm run circuits:build keeps none)
  const work = mkdtempSync(join(tmpdir(), 'metanode-zkey-'))
  try {
    const ptau = await devPtau()
    const z0 = join(work, 'claim_0000.zkey')
    const zf = join(BUILD, 'claim_final.zkey')
    await step('groth16 setup', async () => ok(await snarkjs.zKey.newZKey(join(BUILD, 'claim.r1cs'), ptau, z0, logger), 'groth16 setup'))
    await step('zkey beacon', async () =>
      ok(await snarkjs.zKey.beacon(z0, zf, 'metanode development beacon', DEV_ZKEY_BEACON, BEACON_ITERATIONS_EXP, logger), 'zkey beacon'),
    )
    await step('export verification key', async () => exportVkey(zf, join(BUILD, 'verification_key.json')))
    setupRecord('development', {
      ptau: { beaconHash: DEV_PTAU_BEACON, numIterationsExp: BEACON_ITERATIONS_EXP, sha256: fileHash(ptau) },
      phase2: { beaconHash: DEV_ZKEY_BEACON, numIterationsExp: BEACON_ITERATIONS_EXP },
    })
    writeSums()
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  console.log(`built in ${((performance.now() - t0) / 1000).toFixed(1)} s; wrote circuits/build/* and circuits/SHA256SUMS (DEVELOPMENT keys)`)
}

async function check(): Promise<void> {
  const sums = readSums()
  const problems: string[] = []
  // 1. The committed files are the ones SHA256SUMS names.
  for (const p of [...COMPILED, ...KEYS]) {
    const want = sums.get(p)
    if (!want) problems.push(`${p}: missing from SHA256SUMS`)
    else if (!existsSync(join(CIRCUITS, p))) problems.push(`${p}: missing`)
    else if (fileHash(join(CIRCUITS, p)) !== want) problems.push(`${p}: hash differs from SHA256SUMS`)
  }
  // 2. Recompiling the source gives the same r1cs and wasm (the compile is deterministic).
  const out = mkdtempSync(join(tmpdir(), 'metanode-circom-'))
  try {
    const c = await step('compile (circom2 --O2)', async () => compile(out))
    for (const [p, f] of [
      ['build/claim.r1cs', c.r1cs],
      ['build/claim.wasm', c.wasm],
    ] as const) {
      if (fileHash(f) !== sums.get(p))
        problems.push(
          `${p}: recompiling circuits/claim.circom gives ${fileHash(f)}, SHA256SUMS says ${sums.get(p)} (run npm run circuits:build, or the ceremony, and commit)`,
        )
    }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
  // 3. The verification key is the zkey's, and setup.json names this r1cs.
  await step('verification key vs zkey', async () => {
    const vk = ok(await snarkjs.zKey.exportVerificationKey(join(BUILD, 'claim_final.zkey'), logger), 'zkey export verificationkey')
    const committed = JSON.parse(readFileSync(join(BUILD, 'verification_key.json'), 'utf8'))
    if (!isDeepStrictEqual(JSON.parse(JSON.stringify(vk)), committed))
      problems.push('build/verification_key.json is not the verification key of build/claim_final.zkey')
  })
  const setup = JSON.parse(readFileSync(join(BUILD, 'setup.json'), 'utf8')) as { kind: string; r1csSha256: string }
  if (setup.r1csSha256 !== sums.get('build/claim.r1cs')) problems.push('build/setup.json names another r1cs')
  if (problems.length) {
    for (const p of problems) console.error(`FAIL ${p}`)
    process.exitCode = 1
  } else {
    console.log(`circuits: OK (${setup.kind} keys; r1cs ${sums.get('build/claim.r1cs')!.slice(0, 16)}…)`)
  }
}

/** `snarkjs zkey verify` of the committed zkey against the committed r1cs and the regenerated dev ptau. */
async function verifySetup(): Promise<void> {
  const setup = JSON.parse(readFileSync(join(BUILD, 'setup.json'), 'utf8')) as { kind: string }
  let ptau = values.ptau
  if (!ptau) {
    if (setup.kind !== 'development') throw new Error('production keys: pass the ptau of the ceremony with --ptau')
    ptau = await devPtau()
  }
  const good = await step('zkey verify', async () => snarkjs.zKey.verifyFromR1cs(join(BUILD, 'claim.r1cs'), ptau!, join(BUILD, 'claim_final.zkey'), logger))
  if (good !== true) {
    console.error('FAIL build/claim_final.zkey is not a setup of build/claim.r1cs over this powers of tau')
    process.exitCode = 1
  } else console.log('zkey verify: OK')
}

/**
 * PRODUCTION keys. Phase 1: a random contribution over a fresh accumulator (or a trusted,
 * phase-2-prepared ptau of power >= PTAU_POWER given with --ptau). Phase 2: a random
 * contribution over the groth16 setup of the committed r1cs. snarkjs mixes the entropy with
 * 64 bytes from the OS's CSPRNG; the toxic waste only ever lives in this process's memory.
 */
async function ceremony(): Promise<void> {
  const entropy = values.entropy
  if (!entropy || entropy.length < 32) throw new Error('--entropy "<at least 32 characters of random text>" is required')
  const name = values.name ?? 'metanode production contribution'
  const sums = readSums()
  if (fileHash(join(BUILD, 'claim.r1cs')) !== sums.get('build/claim.r1cs'))
    throw new Error('build/claim.r1cs does not match SHA256SUMS: run npm run circuits:check first')
  const work = mkdtempSync(join(tmpdir(), 'metanode-ceremony-'))
  try {
    let ptau: string
    const extra: Record<string, unknown> = {}
    if (values.ptau) {
      ptau = values.ptau
      extra.ptau = { file: values.ptau, sha256: fileHash(values.ptau), source: 'external (trusted, prepared for phase 2)' }
    } else {
      const curve = await snarkjs.curves.getCurveFromName('bn128')
      const p0 = join(work, 'pot_0000.ptau')
      const p1 = join(work, 'pot_0001.ptau')
      ptau = join(work, 'pot_final.ptau')
      await step(`powers of tau: new 2^${PTAU_POWER}`, async () =>
        ok(await snarkjs.powersOfTau.newAccumulator(curve, PTAU_POWER, p0, logger), 'powersoftau new'),
      )
      const h = await step('powers of tau: random contribution', async () =>
        ok(await snarkjs.powersOfTau.contribute(p0, p1, name, sha256hex(entropy + randomBytes(32).toString('hex')), logger), 'powersoftau contribute'),
      )
      await step('powers of tau: prepare phase 2', async () => ok(await snarkjs.powersOfTau.preparePhase2(p1, ptau, logger), 'powersoftau prepare phase2'))
      extra.ptau = { source: 'fresh accumulator + one random contribution', contributionHash: Buffer.from(h as Uint8Array).toString('hex') }
      if (values['keep-ptau']) {
        copyFileSync(ptau, values['keep-ptau'])
        console.log(`kept the prepared ptau in ${values['keep-ptau']} (needed by circuits:verify-setup --ptau)`)
      }
    }
    const z0 = join(work, 'claim_0000.zkey')
    const z1 = join(work, 'claim_0001.zkey')
    await step('groth16 setup', async () => ok(await snarkjs.zKey.newZKey(join(BUILD, 'claim.r1cs'), ptau, z0, logger), 'groth16 setup'))
    const h2 = await step('zkey: random contribution', async () =>
      ok(await snarkjs.zKey.contribute(z0, z1, name, sha256hex(entropy + randomBytes(32).toString('hex')), logger), 'zkey contribute'),
    )
    extra.phase2 = { contributor: name, contributionHash: Buffer.from(h2 as Uint8Array).toString('hex') }
    const good = await step('zkey verify', async () => snarkjs.zKey.verifyFromR1cs(join(BUILD, 'claim.r1cs'), ptau, z1, logger))
    if (good !== true) throw new Error('the new zkey does not verify against the r1cs and ptau')
    copyFileSync(z1, join(BUILD, 'claim_final.zkey'))
    await step('export verification key', async () => exportVkey(join(BUILD, 'claim_final.zkey'), join(BUILD, 'verification_key.json')))
    setupRecord('production', { createdAt: new Date().toISOString(), ...extra })
    writeSums()
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  console.log(
    [
      'installed PRODUCTION keys in circuits/build (claim_final.zkey, verification_key.json, setup.json) and updated circuits/SHA256SUMS.',
      'WARNING: the hub verifies with verification_key.json and devices prove with claim_final.zkey: both sides must ship',
      'exactly these files. Proofs made with the development keys (or any other ceremony) will be rejected, and vice versa.',
      `  zkey sha256: ${fileHash(join(BUILD, 'claim_final.zkey'))}`,
      `  vkey sha256: ${fileHash(join(BUILD, 'verification_key.json'))}`,
    ].join('\n'),
  )
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    entropy: { type: 'string' },
    name: { type: 'string' },
    ptau: { type: 'string' },
    'keep-ptau': { type: 'string' },
  },
})

const commands: Record<string, () => Promise<void>> = { build, check, 'verify-setup': verifySetup, ceremony }
const cmd = positionals[0] ?? 'build'
const run = commands[cmd]
if (!run) {
  console.error(`usage: node --import tsx circuits/build.ts [${Object.keys(commands).join('|')}]`)
  process.exit(2)
}
try {
  await run()
} catch (e) {
  console.error((e as Error).message)
  process.exitCode = 1
} finally {
  // ffjavascript keeps worker threads alive through globalThis.curve_bn128.
  await (globalThis as { curve_bn128?: { terminate(): Promise<void> } }).curve_bn128?.terminate()
}
