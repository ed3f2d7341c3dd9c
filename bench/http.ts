/**
 * `npm run bench:http`: the HTTP gateway's request rate for an authenticated GET and PATCH
 * of a device's state document, with no policy rules and with 20 (the HTTP CAGE's cost as a
 * ratio; the aim is ≥ 0.8 of the rule-free rate). Two kinds of authentication: the admin
 * bearer token, and requests signed by a service principal (an ed25519 verification each).
 *
 * One hub child process serves every phase; the rules are swapped between phases with
 * PUT /v1/policies, and the two settings alternate in balanced order (no rules, 20 rules,
 * 20 rules, no rules, ...) so that drift on this shared machine falls on both alike. The
 * load generator (bare keep-alive sockets, closed loop) runs here, on the same cores as the
 * hub: hub CPU per request, read from /proc/PID/stat, is the steadier figure. The engine
 * alone is also timed in this process, a figure that other load on the machine barely moves.
 *
 * Knobs (environment, all bounded): BENCH_HTTP_SECONDS (measured seconds per phase),
 * BENCH_HTTP_CONNECTIONS, BENCH_HTTP_WARMUP_SECONDS, BENCH_HTTP_ROUNDS (pairs of phases per
 * request kind), BENCH_HTTP_ONLY (comma-separated: admin-get, admin-patch, signed-get,
 * signed-patch), BENCH_HTTP_HUB_NODE_ARGS (extra node flags for the hub, e.g. "--cpu-prof"),
 * BENCH_HTTP_PROFILE_DIR (a CPU profile of the hub per phase), BENCH_HTTP_DATA_DIR (where the
 * hub's database goes; the system's temporary directory by default).
 * docs/performance.md ("HTTP gateway (HTTP CAGE)") describes the run and its figures.
 */
import { availableParallelism } from 'node:os'
import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { startNodeBroker, stopAllChildren, type BrokerProcess } from './lib/children.js'
import { enrolMany, type HubAdmin } from './lib/principals.js'
import { machineBusyFraction, machineCpu } from './lib/proc.js'
import { LatencyRecorder } from './lib/stats.js'
import { dec, int, pct, table } from './lib/report.js'
import { runHttpPhase, type HttpPhaseResult } from './http/client.js'
import { RequestSource, SCENARIOS, requestShapes, type Scenario, type Target } from './http/requests.js'
import { TWENTY_RULES, assertNoRuleMatches, timeEvaluation } from './http/rules.js'
import { envNumber } from './lib/knobs.js'

interface Knobs {
  seconds: number
  connections: number
  warmupSeconds: number
  rounds: number
  only: Set<string> | null
  hubNodeArgs: string[]
  profileDir: string | null
}

function readKnobs (): Knobs {
  const num = envNumber
  const only = (process.env.BENCH_HTTP_ONLY ?? '').split(',').map(s => s.trim()).filter(Boolean)
  for (const slug of only) {
    if (!SCENARIOS.some(s => s.slug === slug)) throw new Error(`BENCH_HTTP_ONLY: unknown "${slug}"; use ${SCENARIOS.map(s => s.slug).join(', ')}`)
  }
  return {
    // At most 60 s: a pool is signed before its phase, and its timestamps must stay well
    // inside the hub's 120 s skew window until the last request is sent.
    seconds: num('BENCH_HTTP_SECONDS', 4, 1, 60),
    connections: Math.round(num('BENCH_HTTP_CONNECTIONS', 10, 1, 256)),
    warmupSeconds: num('BENCH_HTTP_WARMUP_SECONDS', 1, 0.5, 30),
    rounds: Math.round(num('BENCH_HTTP_ROUNDS', 2, 1, 10)),
    only: only.length > 0 ? new Set(only) : null,
    hubNodeArgs: (process.env.BENCH_HTTP_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean),
    profileDir: process.env.BENCH_HTTP_PROFILE_DIR ? resolve(process.env.BENCH_HTTP_PROFILE_DIR) : null,
  }
}

/** Unrecorded requests at the start of every phase, after the rules changed. */
const SETTLE_MS = 500
/**
 * Signed pools hold POOL_MARGIN times what the best rate seen so far needs, and never less
 * than RATE_FLOOR requests per second's worth: a rate measured while the machine was busy
 * elsewhere would otherwise leave the next phase short when the load lifts.
 */
const POOL_MARGIN = 1.5
const RATE_FLOOR = 3_000
/** Most requests signed for one phase (about 6 s of signing on this machine, ~60 µs each). */
const POOL_TOTAL_MAX = 100_000
const AIM = 0.8
/** A phase during which other processes kept this many cores busy is marked: its rate says more about them than about the hub. */
const DISTURBED_CORES = 0.5

type Setting = 'none' | 'twenty'
const SETTINGS: readonly Setting[] = ['none', 'twenty']
const SETTING_LABEL: Record<Setting, string> = { none: 'no rules', twenty: '20 rules' }

interface PhaseRow {
  scenario: Scenario
  round: number
  setting: Setting
  result: HttpPhaseResult
}

interface Totals {
  completed: number
  wallSeconds: number
  hubSeconds: number
  latency: LatencyRecorder
}

function log (message: string): void {
  process.stderr.write(`[bench:http] ${message}\n`)
}

async function putRules (admin: HubAdmin, rules: unknown[]): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${admin.httpPort}/v1/policies`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${admin.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rules }),
    signal: AbortSignal.timeout(10_000),
  })
  if (res.status !== 200) throw new Error(`PUT /v1/policies failed: ${res.status} ${await res.text()}`)
  const { rules: active } = await res.json() as { rules: unknown[] }
  if (active.length !== rules.length) throw new Error(`PUT /v1/policies: ${active.length} rules active, ${rules.length} sent`)
}

/** Runs `run`, CPU-profiling the hub through it when BENCH_HTTP_PROFILE_DIR is set. */
function profiled<T> (knobs: Knobs, hub: BrokerProcess, name: string, run: () => Promise<T>): Promise<T> {
  if (!knobs.profileDir) return run()
  mkdirSync(knobs.profileDir, { recursive: true })
  return hub.profile(join(knobs.profileDir, `hub-http-${name}.cpuprofile`), run)
}

function rate (completed: number, seconds: number): number {
  return seconds > 0 ? completed / seconds : NaN
}

/** Cores busy over a phase that were neither the hub nor the generator: other work on the machine, and kernel time charged to no process. */
function otherCores (r: HttpPhaseResult): number {
  return r.machineBusy * availableParallelism() - (r.hubSeconds + r.generatorSeconds) / r.wallSeconds
}

async function benchScenario (knobs: Knobs, hub: BrokerProcess, admin: HubAdmin, target: Target, scenario: Scenario, rows: PhaseRow[]): Promise<Record<Setting, Totals>> {
  const source = new RequestSource(scenario, target, knobs.connections)
  const phaseMs = SETTLE_MS + knobs.seconds * 1000
  let bestRate = 0
  const sign = (seconds: number): void => {
    if (scenario.auth !== 'signed') return
    const want = Math.max(bestRate, RATE_FLOOR) * POOL_MARGIN * seconds
    const perLane = Math.ceil(Math.min(want, POOL_TOTAL_MAX) / knobs.connections) + 10
    const t0 = performance.now()
    source.presign(perLane)
    log(`  signed ${int(perLane * knobs.connections)} requests in ${dec((performance.now() - t0) / 1000, 1)} s (before the clock starts)`)
  }

  // Warm-up under the 20 rules, so that the engine's code is compiled before it is timed;
  // the rate of its second half (the code compiled by then) sizes the first signed pool.
  log(`${scenario.label}: warm-up ${knobs.warmupSeconds} s`)
  await putRules(admin, TWENTY_RULES)
  sign(knobs.warmupSeconds)
  const warmMs = knobs.warmupSeconds * 1000
  const warm = await runHttpPhase({ port: target.port, connections: knobs.connections, next: source.next, settleMs: warmMs / 2, measureMs: warmMs / 2, hubPid: hub.pid, latency: new LatencyRecorder(1) })
  if (warm.errors > 0) throw new Error(`${scenario.label}: ${warm.errors} failed requests in the warm-up; first: ${warm.firstError}`)
  bestRate = warm.completed > 0 ? rate(warm.completed, warm.wallSeconds) : 0

  const totals = {} as Record<Setting, Totals>
  for (const setting of SETTINGS) {
    // Room for every latency at up to 50,000 requests per second; past that, samples are counted, not kept.
    totals[setting] = { completed: 0, wallSeconds: 0, hubSeconds: 0, latency: new LatencyRecorder(Math.min(2_000_000, Math.ceil(knobs.rounds * knobs.seconds * 50_000))) }
  }
  for (let round = 1; round <= knobs.rounds; round++) {
    // Odd rounds run no rules first, even rounds 20 rules first (A B, B A, A B, ...): a
    // steady drift (a growing heap, the replay guard filling up, load elsewhere rising) and
    // any cost of coming first after a change fall on both settings alike.
    for (const setting of round % 2 === 1 ? SETTINGS : [...SETTINGS].reverse()) {
      await putRules(admin, setting === 'none' ? [] : TWENTY_RULES)
      sign(phaseMs / 1000)
      const t = totals[setting]
      const result = await profiled(knobs, hub, `${scenario.slug}-${setting}-${round}`, () => runHttpPhase({
        port: target.port, connections: knobs.connections, next: source.next, settleMs: SETTLE_MS, measureMs: knobs.seconds * 1000, hubPid: hub.pid, latency: t.latency,
      }))
      // Any refusal means the phase measured something else than the request path (a rule
      // that matched, a limit, a stale signature): stop rather than print it.
      if (result.errors > 0) throw new Error(`${scenario.label}, ${SETTING_LABEL[setting]}: ${result.errors} failed requests; first: ${result.firstError}`)
      if (result.completed === 0) throw new Error(`${scenario.label}, ${SETTING_LABEL[setting]}: no request completed`)
      const r = rate(result.completed, result.wallSeconds)
      bestRate = Math.max(bestRate, r)
      t.completed += result.completed
      t.wallSeconds += result.wallSeconds
      t.hubSeconds += result.hubSeconds
      rows.push({ scenario, round, setting, result })
      log(`  round ${round}, ${SETTING_LABEL[setting]}: ${int(r)} req/s, hub ${dec(result.hubSeconds * 1e6 / result.completed)} µs/req${result.poolSpent ? `, pool spent after ${dec(result.wallSeconds, 1)} s` : ''}`)
    }
  }
  return totals
}

interface EngineTiming {
  twentyUs: number
  noneUs: number
}

function report (knobs: Knobs, results: Array<{ scenario: Scenario, totals: Record<Setting, Totals> }>, rows: PhaseRow[], engine: EngineTiming): string {
  const out: string[] = []
  const cpuUs = (t: Totals): number => t.hubSeconds * 1e6 / t.completed
  const lat = (t: Totals): string => {
    const [p50, p99] = t.latency.percentiles([50, 99])
    return `${dec(p50, 2)} / ${dec(p99, 2)}`
  }
  const phaseRate = (scenario: Scenario, round: number, setting: Setting): number => {
    const r = rows.find(row => row.scenario === scenario && row.round === round && row.setting === setting)!.result
    return rate(r.completed, r.wallSeconds)
  }
  const disturbed = (scenario: Scenario): boolean => rows.some(row => row.scenario === scenario && otherCores(row.result) > DISTURBED_CORES)
  // The ratio of each round's pair on its own: how far the pooled ratio can be trusted.
  const roundRatios = (scenario: Scenario): string => {
    const ratios = Array.from({ length: knobs.rounds }, (_, i) => phaseRate(scenario, i + 1, 'twenty') / phaseRate(scenario, i + 1, 'none'))
    return ratios.length === 1 ? '' : `${dec(Math.min(...ratios), 2)}–${dec(Math.max(...ratios), 2)}`
  }
  out.push('## Side by side', '')
  out.push(table(
    ['request', 'req/s, no rules', 'req/s, 20 rules', 'ratio', 'ratio per round', 'p50 / p99 ms, no rules', 'p50 / p99 ms, 20 rules', 'hub CPU µs/req, no rules', 'hub CPU µs/req, 20 rules', 'CPU ratio', `aim ≥ ${AIM}`],
    results.map(({ scenario, totals: { none, twenty } }) => {
      const ratio = rate(twenty.completed, twenty.wallSeconds) / rate(none.completed, none.wallSeconds)
      // No-rules cost over with-rules cost: the rate ratio the hub alone would reach.
      const cpuRatio = cpuUs(none) / cpuUs(twenty)
      return [
        scenario.label,
        int(rate(none.completed, none.wallSeconds)),
        int(rate(twenty.completed, twenty.wallSeconds)),
        dec(ratio, 2),
        roundRatios(scenario),
        lat(none),
        lat(twenty),
        dec(cpuUs(none)),
        dec(cpuUs(twenty)),
        dec(cpuRatio, 2),
        (ratio >= AIM ? 'met' : 'NOT met') + (disturbed(scenario) ? ' (disturbed)' : ''),
      ]
    }),
  ))
  const adminGet = results.find(r => r.scenario.slug === 'admin-get')
  out.push('', `The policy engine alone (CompiledPolicy.evaluate in the bench process, the benchmarked requests): ${dec(engine.twentyUs, 2)} µs per request with the 20 rules, ` +
    `${dec(engine.noneUs, 2)} µs with none` +
    (adminGet ? `; the hub spent ${dec(cpuUs(adminGet.totals.none))} µs of CPU per admin GET without rules, so the rules' own cost is ${dec(100 * (engine.twentyUs - engine.noneUs) / cpuUs(adminGet.totals.none), 1)} % of the cheapest request.` : '.'))
  out.push('', '## Each phase, in the order run', '')
  out.push(table(
    ['request', 'round', 'rules', 'req/s', 'hub CPU µs/req', 'hub cores', 'generator cores', 'machine busy', 'other processes, cores'],
    rows.map(({ scenario, round, setting, result: r }) => [
      scenario.label,
      String(round),
      SETTING_LABEL[setting],
      int(rate(r.completed, r.wallSeconds)) + (r.poolSpent ? '*' : ''),
      dec(r.hubSeconds * 1e6 / r.completed),
      dec(r.hubSeconds / r.wallSeconds, 2),
      dec(r.generatorSeconds / r.wallSeconds, 2),
      pct(r.machineBusy),
      dec(Math.max(0, otherCores(r)), 2) + (otherCores(r) > DISTURBED_CORES ? ' (disturbed)' : ''),
    ]),
  ))
  out.push('')
  if (rows.some(r => otherCores(r.result) > DISTURBED_CORES)) {
    out.push(`(disturbed): other processes kept more than ${DISTURBED_CORES} cores busy in a phase; its rate, and a ratio that uses it, are not the hub's. Run again when the machine is quieter; hub CPU per request suffers less.`, '')
  }
  if (rows.some(r => r.result.poolSpent)) out.push('\\* the phase ended early: a lane used up its pool of pre-signed requests (the rate is over the time it ran).', '')
  out.push(
    `Load: ${knobs.connections} keep-alive connections, one request in flight each (closed loop), lane i reading or patching device i; ` +
      `${knobs.seconds} s measured per phase after ${SETTLE_MS / 1000} s unrecorded, ${knobs.rounds} rounds of (no rules, 20 rules) per request kind, the order flipped every round, ` +
      `against one hub process; ${knobs.warmupSeconds} s warm-up per request kind. ` +
      'PATCH sends `{"desired":{"setpoint":n}}` with a new n each time (a new version and a delta to the device each). ' +
      'Signed requests: lane i signs as service i (MN1-Ed25519, docs/protocol.md §8.1), pre-signed in pools before each phase. ' +
      '20 rules: the 2 defaults and 18 others (bench/http/rules.ts), none matching the benchmarked requests, so each request walks all 20.',
    'NOTE: the load generator runs on the same cores as the hub (its CPU is in "generator cores"); hub CPU per request, ' +
      'from /proc/PID/stat, is the steadier comparison, and "CPU ratio" (no-rules cost / 20-rules cost) is the rate ratio the hub alone would show.',
  )
  return out.join('\n')
}

async function main (): Promise<void> {
  const knobs = readKnobs()
  const started = performance.now()
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  const facts = [`machine: ${availableParallelism()} cores (nproc), ${cpuModel}; Node ${process.version}`]
  // Other work on the machine skews every figure here: measure it once before starting.
  const idle0 = machineCpu()
  await new Promise(resolve => setTimeout(resolve, 1_000))
  const background = machineBusyFraction(idle0, machineCpu()) * availableParallelism()
  facts.push(`background load before the run: ${dec(background, 2)} cores busy${background > 0.3 ? ' (the machine is not quiet: expect noisy figures)' : ''}`)
  for (const fact of facts) log(fact)

  const hub = await startNodeBroker('hub', 'hub-server.ts', knobs.hubNodeArgs)
  try {
    const admin: HubAdmin = { httpPort: Number(hub.info.httpPort), adminToken: String(hub.info.adminToken) }
    log(`hub: enrolling ${knobs.connections} devices and ${knobs.connections} services over HTTP`)
    const target: Target = {
      port: admin.httpPort,
      adminToken: admin.adminToken,
      devices: await enrolMany(admin, 'device', knobs.connections),
      services: await enrolMany(admin, 'service', knobs.connections),
    }
    const shapes = requestShapes(target)
    assertNoRuleMatches(shapes)
    const engine = timeEvaluation(shapes)
    const rows: PhaseRow[] = []
    const results: Array<{ scenario: Scenario, totals: Record<Setting, Totals> }> = []
    for (const scenario of SCENARIOS) {
      if (knobs.only && !knobs.only.has(scenario.slug)) continue
      results.push({ scenario, totals: await benchScenario(knobs, hub, admin, target, scenario, rows) })
    }
    console.log(`# Metanode HTTP gateway benchmark\n\n${facts.join('; ')}\n`)
    console.log(report(knobs, results, rows, engine))
    console.log(`\nTotal run time: ${dec((performance.now() - started) / 1000, 0)} s.`)
  } finally {
    await hub.stop()
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the hub`)
    stopAllChildren().finally(() => process.exit(130))
  })
}

main().then(() => stopAllChildren(), async err => {
  console.error(err)
  await stopAllChildren()
  process.exitCode = 1
})
