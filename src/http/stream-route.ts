/**
 * GET /v1/stream: bridge records as Server-Sent Events, for services that cannot speak
 * MQTT. `?type=status_update` and `?device=<id>` narrow it, as the bridge topic's levels.
 * Each event is one record as JSON (byte strings as base64). A consumer that reads too
 * slowly is cut off rather than buffered without bound.
 */
import type { FastifyPluginCallback } from 'fastify'
import { decodeBridgeRecord, messageTypeName } from '../protocol/index.js'
import { ForbiddenError, UnauthorizedError } from '../errors.js'

export type ListenBridge = (filter: string, handler: (topic: string, payload: Buffer) => void) => Promise<() => Promise<void>>

export interface StreamRouteOptions {
  listenBridge: ListenBridge
  /** Bytes a slow consumer may have waiting before it is disconnected. */
  bufferedBytesMax?: number
  /** Comment lines keep idle connections open through proxies, in ms. */
  heartbeatMs?: number
}

const TYPE_NAME = '^[a-z_]{1,40}$'
const DEVICE_ID = '^[0-9a-f]{32}$'

export const streamRoute: FastifyPluginCallback<StreamRouteOptions> = (app, options, done) => {
  const bufferedBytesMax = options.bufferedBytesMax ?? 1024 * 1024
  const heartbeatMs = options.heartbeatMs ?? 15_000
  const open = new Set<() => void>()

  // Streams never finish on their own, so the server's close would wait for them forever.
  app.addHook('preClose', async () => {
    for (const end of [...open]) end()
  })

  app.get<{ Querystring: { type?: string, device?: string } }>('/v1/stream', {
    onRequest: async request => {
      const { identity } = request
      if (identity.kind === 'anonymous') throw new UnauthorizedError('the stream needs the admin token or a service signature')
      if (identity.kind === 'principal' && identity.role === 'device') throw new ForbiddenError('devices cannot read the bridge stream')
    },
    schema: {
      tags: ['stream'],
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { type: { type: 'string', pattern: TYPE_NAME }, device: { type: 'string', pattern: DEVICE_ID } },
      },
    },
  }, async (request, reply) => {
    const filter = `mn/v1/bridge/${request.query.type ?? '+'}/${request.query.device ?? '+'}`
    const raw = reply.raw
    reply.hijack()
    let ended = false
    let heartbeat: NodeJS.Timeout | undefined
    let stopListening: (() => Promise<void>) | undefined
    const end = (): void => {
      if (ended) return
      ended = true
      open.delete(end)
      clearInterval(heartbeat)
      void stopListening?.()
      raw.end()
    }
    open.add(end)
    raw.on('close', end)
    // Subscribe first, answer after: once the caller has the headers, no record is missed.
    stopListening = await options.listenBridge(filter, (_topic, payload) => {
      if (ended) return
      if (raw.writableLength > bufferedBytesMax) {
        request.log.warn({ filter }, 'stream consumer too slow; disconnecting it')
        return end()
      }
      raw.write(`event: record\ndata: ${recordJson(payload)}\n\n`)
    })
    if (ended) return stopListening()
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    })
    raw.write(': metanode bridge stream\n\n')
    heartbeat = setInterval(() => raw.write(': keepalive\n\n'), heartbeatMs)
  })
  done()
}

function recordJson (payload: Buffer): string {
  try {
    const record = decodeBridgeRecord(payload)
    return JSON.stringify({ ...record, typeName: messageTypeName(record.type) }, (_key, value: unknown) =>
      value instanceof Uint8Array ? Buffer.from(value).toString('base64') : typeof value === 'bigint' ? value.toString() : value)
  } catch {
    return JSON.stringify({ error: 'undecodable record' })
  }
}
