/**
 * A closed-loop HTTP/1.1 load generator on bare keep-alive sockets: each connection sends
 * one request, waits for the whole response, and sends the next. Requests are bytes built
 * (and, for principals, signed) before they are needed, and responses are parsed only as
 * far as the status and Content-Length, so the generator spends as little as possible of
 * the two cores it shares with the hub. The hub answers with Content-Length (Fastify does
 * for JSON); a chunked answer is treated as an error.
 */
import { connect, type Socket } from 'node:net'
import { CpuWindow } from '../lib/proc.js'
import type { LatencyRecorder } from '../lib/stats.js'

/** The bytes of a lane's next request; null when its pool of signed requests is spent. */
export type NextRequest = (lane: number) => Buffer | null

export interface HttpPhaseOptions {
  port: number
  connections: number
  next: NextRequest
  /** Requests run, unrecorded, before the measured window: the connections settle. */
  settleMs: number
  measureMs: number
  hubPid: number
  /** Latencies of the measured window go here (one recorder may span several phases). */
  latency: LatencyRecorder
}

export interface HttpPhaseResult {
  /** Responses completed in the measured window. */
  completed: number
  /** Non-200 answers, closed connections and unparsable responses in the whole phase. */
  errors: number
  firstError: string | null
  wallSeconds: number
  hubSeconds: number
  generatorSeconds: number
  machineBusy: number
  /** True when a lane ran out of pre-signed requests, which ended the window early. */
  poolSpent: boolean
}

const HEADER_END = Buffer.from('\r\n\r\n')
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i
const CONNECTION_CLOSE = /\r\nconnection: *close/i
// A phase whose connections keep dying is broken, not slow: stop it rather than loop.
const RECONNECTS_MAX = 100
const DRAIN_MS = 5_000

/** Runs one phase: settle, then the measured window, then waits for answers in flight. */
export function runHttpPhase (options: HttpPhaseOptions): Promise<HttpPhaseResult> {
  const { port, connections, next, latency } = options
  let recording = false
  let running = true
  let completed = 0
  let errors = 0
  let firstError: string | null = null
  let reconnects = 0
  let poolSpent = false
  let inFlight = 0
  let cpu: CpuWindow | null = null
  let endWindow: (() => void) | null = null
  const sockets = new Set<Socket>()

  const fail = (message: string): void => {
    errors += 1
    firstError ??= message
  }

  return new Promise<HttpPhaseResult>((resolve, reject) => {
    let settled = false
    const abort = (err: Error): void => {
      if (settled) return
      settled = true
      running = false
      clearTimeout(settleTimer)
      clearTimeout(measureTimer)
      for (const socket of sockets) socket.destroy()
      reject(err)
    }

    const lane = (index: number): void => {
      const socket = connect(port, '127.0.0.1')
      sockets.add(socket)
      socket.setNoDelay(true)
      let pending: Buffer | null = null
      let sentAt = 0
      let waiting = false

      const send = (): void => {
        if (!running) return
        const request = next(index)
        if (request === null) {
          poolSpent = true
          endWindow?.()
          return
        }
        waiting = true
        inFlight += 1
        sentAt = performance.now()
        socket.write(request)
      }

      socket.on('connect', send)
      socket.on('data', (chunk: Buffer) => {
        pending = pending === null ? chunk : Buffer.concat([pending, chunk])
        // Closed loop: one request in flight, so at most one whole response is expected;
        // anything after it would be a protocol error.
        const headerEnd = pending.indexOf(HEADER_END)
        if (headerEnd === -1) return
        const head = pending.toString('latin1', 0, headerEnd)
        const length = CONTENT_LENGTH.exec(head)
        if (length === null) {
          fail(`response without Content-Length: ${head.split('\r\n')[0]}`)
          return void socket.destroy()
        }
        const total = headerEnd + 4 + Number(length[1])
        if (pending.length < total) return
        const status = Number(head.slice(9, 12))
        const doneAt = performance.now()
        if (status !== 200) fail(`${status} ${pending.toString('utf8', headerEnd + 4, total).slice(0, 300)}`)
        else if (recording) {
          completed += 1
          latency.record(doneAt - sentAt)
        }
        if (pending.length > total) {
          fail('more bytes than one response')
          return void socket.destroy()
        }
        pending = null
        waiting = false
        inFlight -= 1
        if (CONNECTION_CLOSE.test(head)) return void socket.end()
        if (!running) return maybeDrained()
        send()
      })
      socket.on('error', err => {
        if (running) fail(`socket: ${err.message}`)
      })
      socket.on('close', () => {
        sockets.delete(socket)
        if (waiting) inFlight -= 1
        if (!running) return void maybeDrained()
        if (++reconnects > RECONNECTS_MAX) return abort(new Error(`connections keep closing; first error: ${firstError}`))
        lane(index)
      })
    }

    let drainTimer: NodeJS.Timeout | null = null
    let result: HttpPhaseResult | null = null
    const maybeDrained = (): void => {
      if (settled || result === null || inFlight > 0) return
      settled = true
      if (drainTimer) clearTimeout(drainTimer)
      for (const socket of sockets) socket.destroy()
      resolve(result)
    }

    for (let i = 0; i < connections; i++) lane(i)

    let measureTimer: NodeJS.Timeout | undefined
    const settleTimer = setTimeout(() => {
      if (settled) return
      cpu = new CpuWindow(options.hubPid)
      recording = true
      // Ends the window on time, or at once when a lane's pool runs dry (a lane that
      // stopped would lower the concurrency for the rest of the window).
      endWindow = () => {
        if (!recording) return
        recording = false
        running = false
        clearTimeout(measureTimer)
        const meter = cpu!.read()
        result = {
          completed,
          errors,
          firstError,
          wallSeconds: meter.wallSeconds,
          hubSeconds: meter.brokerSeconds,
          generatorSeconds: meter.generatorSeconds,
          machineBusy: meter.machineBusy,
          poolSpent,
        }
        // Answers still in flight are awaited (not counted), so the next phase starts clean.
        drainTimer = setTimeout(() => {
          for (const socket of sockets) socket.destroy()
          if (!settled) {
            settled = true
            resolve(result!)
          }
        }, DRAIN_MS)
        maybeDrained()
      }
      if (poolSpent) return endWindow()
      measureTimer = setTimeout(endWindow, options.measureMs)
    }, options.settleMs)
  })
}
