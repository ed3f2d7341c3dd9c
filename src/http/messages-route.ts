/**
 * POST /v1/devices/{id}/messages: sends an envelope to a device's `down` topic (QoS 1, from
 * the hub's own principal id), for backends that speak HTTP. The admin and services may
 * send; the answer says whether the device has a live session now (if not, a persistent
 * session gets it when it returns). With `wait`, the answer comes once the device's MQTT
 * client has acknowledged the message (`delivered: true`), or after `timeoutMs` (`false`).
 */
import type { FastifyPluginCallback } from 'fastify'
import { ForbiddenError, UnauthorizedError } from '../errors.js'

export type SendToDevice = (
  deviceId: string,
  message: { type: number, body: unknown, prio: number },
  /** When set, wait up to this long for the device's PUBACK. */
  waitMs?: number,
) => Promise<{ id: string, online: boolean, delivered?: boolean }>

export interface MessagesRouteOptions {
  sendToDevice: SendToDevice
}

/** The types a backend may send down (§5); Acks are the hub's alone. */
const SENDABLE: Record<string, number> = { ConfigurationUpdate: 2, MiningReward: 21, AuthenticationResponse: 31, StateUpdate: 41 }

export const messagesRoute: FastifyPluginCallback<MessagesRouteOptions> = (app, options, done) => {
  app.post<{ Params: { id: string }, Body: { type: string, body?: unknown, prio?: number, wait?: boolean, timeoutMs?: number } }>('/v1/devices/:id/messages', {
    onRequest: async request => {
      const { identity } = request
      if (identity.kind === 'anonymous') throw new UnauthorizedError('sending needs the admin token or a service signature')
      if (identity.kind === 'principal' && identity.role !== 'service') throw new ForbiddenError('only the admin and services may send to devices')
    },
    schema: {
      tags: ['devices'],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } } },
      body: {
        type: 'object',
        required: ['type'],
        additionalProperties: false,
        properties: {
          type: { type: 'string', enum: Object.keys(SENDABLE) },
          body: {},
          prio: { type: 'integer', minimum: 0, maximum: 3 },
          wait: { type: 'boolean' },
          timeoutMs: { type: 'integer', minimum: 100, maximum: 30_000 },
        },
      },
      response: {
        202: { type: 'object', required: ['id', 'online'], properties: { id: { type: 'string' }, online: { type: 'boolean' }, delivered: { type: 'boolean' } } },
      },
    },
  }, async (request, reply) => {
    const sent = await options.sendToDevice(request.params.id, {
      type: SENDABLE[request.body.type],
      body: request.body.body ?? {},
      prio: request.body.prio ?? 2,
    }, request.body.wait ? request.body.timeoutMs ?? 10_000 : undefined)
    return reply.code(202).send(sent)
  })
  done()
}
