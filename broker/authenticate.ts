/**
 * CONNECT authentication of protocol-v1 §2, in the order the contract fixes:
 * client id ≠ username → 5; unknown id → 4; password not 88 bytes or bad signature → 4;
 * ts outside the skew window → 4; nonce already used → 4; revoked → 5 (after the
 * signature, so only the key's holder learns of the revocation). Only an accepted
 * CONNECT records its nonce.
 */
import type { Client, AuthenticateError } from 'aedes'
import { parseConnectPassword, toHex } from '../src/protocol/index.js'
import { verifyEd25519 } from '../src/auth/principal-keys.js'
import type { BrokerContext } from './context.js'

type Done = (error: AuthenticateError | null, success: boolean | null) => void

const RETURN_CODE_MESSAGES: Record<number, string> = {
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
}

export function createAuthenticate (ctx: BrokerContext) {
  const skewMs = ctx.config.protocol.skewMs

  function refuse (done: Done, returnCode: number): void {
    ctx.metrics.connects.inc({ result: String(returnCode) })
    const err = new Error(RETURN_CODE_MESSAGES[returnCode]) as AuthenticateError
    ;(err as { returnCode: number }).returnCode = returnCode
    done(err, null)
  }

  return function authenticate (client: Client, username: string | undefined, password: Buffer | undefined, done: Done): void {
    const state = ctx.clients.get(client)
    if (!state) return refuse(done, 5)
    // [MQTT-3.1.3-8]: a zero-length client id with CleanSession 0 gets return code 2.
    // Aedes has already replaced the empty id by then, so the id as sent is kept from preConnect.
    if (state.sentClientId === '' && !state.cleanSession) return refuse(done, 2)

    const anonymous = password === undefined && ctx.config.allowAnonymous
    if (!anonymous && (username === undefined || state.sentClientId !== username)) return refuse(done, 5)

    const accept = async (): Promise<number | null> => {
      if (anonymous) {
        // An anonymous client must not take the id, and with it the session, of a principal.
        if (state.sentClientId !== '' && await ctx.directory.get(state.sentClientId)) return 5
        state.identity = { kind: 'anonymous' }
        return null
      }
      const principal = await ctx.directory.get(username!)
      if (!principal) return 4
      const parsed = parseConnectPassword(password, principal.id)
      if (!parsed) return 4
      if (!await verifyEd25519(principal.key, parsed.signingInput, parsed.signature)) return 4
      const nowMs = Date.now()
      if (Math.abs(parsed.ts - nowMs) > skewMs) return 4
      const nonce = toHex(parsed.nonce)
      if (ctx.connectNonces.has(principal.id, nonce)) return 4
      // Read again: a revocation may have landed while the signature was being checked.
      if ((await ctx.directory.get(principal.id))?.revoked !== false) return 5
      if (ctx.fleetNonces) {
        // Cluster mode: a nonce used on another process is a replay too. Without an
        // answer from the fleet the CONNECT is refused as "server unavailable" (3).
        const fresh = await ctx.fleetNonces.firstSeen([[principal.id, nonce]]).catch(() => null)
        if (fresh === null) return 3
        if (!fresh[0]) return 4
      }
      const current = await ctx.directory.get(principal.id)
      if (!current || current.revoked) return 5
      ctx.connectNonces.add(principal.id, nonce, nowMs)
      state.identity = { kind: 'principal', id: principal.id, role: principal.role }
      state.principal = current
      return null
    }
    accept().then(code => {
      if (code !== null) return refuse(done, code)
      ctx.metrics.connects.inc({ result: anonymous ? 'anonymous' : 'accepted' })
      done(null, true)
    }, (err: unknown) => {
      // The registry could not be read (the database is unreachable): "server unavailable".
      ctx.log.warn({ err, clientId: client.id }, 'CONNECT refused: the principal could not be read')
      refuse(done, 3)
    })
  }
}
