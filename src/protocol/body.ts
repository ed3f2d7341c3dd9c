/**
 * The body shapes of §5, checked last (reason `body`). Bodies arrive decoded by
 * decodeCbor's rules: maps with text keys are plain objects, other maps are Maps (which no
 * shape accepts: §5 says map keys inside bodies are text strings). Keys a shape does not
 * name are ignored, so that later minor versions can add fields.
 */
import { DOWN_TYPES, ID_BYTES, MessageType, REJECT_CODES, UP_TYPES, type Direction } from './constants.js'

/** A snarkjs decimal field element: bn128 elements are below 2^254 (77 digits). */
const DECIMAL = /^(0|[1-9][0-9]{0,77})$/
const CIRCUIT_CHARS_MAX = 128
const PUBLIC_SIGNALS_MAX = 256

type Shape = (body: unknown, direction: Direction) => string | null

const SHAPES: ReadonlyMap<number, Shape> = new Map<number, Shape>([
  [MessageType.Heartbeat, (body) => body === undefined || body === null || isPlainObject(body) ? null : 'expected no body or a map'],
  [MessageType.StatusUpdate, (body) => isPlainObject(body) ? null : 'expected a map of readings'],
  [MessageType.ConfigurationUpdate, (body) => isPlainObject(body) ? null : 'expected a map'],
  [MessageType.SecurityAlert, securityAlert],
  [MessageType.StateUpdate, stateUpdate],
  [MessageType.ProofSubmission, proofBody],
  [MessageType.TokenClaim, proofBody],
  [MessageType.StatusSync, (body) => isPlainObject(body) && isUint(body.version) ? null : 'expected {"version": uint}'],
  [MessageType.Ack, ackShape],
])

/**
 * Whether body has the shape §5 gives its type in that direction. Types whose body §5
 * leaves to the project accept any body; a type that cannot travel in that direction
 * accepts none.
 */
export function validateBody (type: number, body: unknown, direction: Direction): boolean {
  return bodyProblem(type, body, direction) === null
}

/** Like validateBody, but says what is wrong (for logs), or null when nothing is. */
export function bodyProblem (type: number, body: unknown, direction: Direction): string | null {
  if (direction !== 'up' && direction !== 'down') throw new TypeError(`direction expected 'up' or 'down', got ${String(direction)}`)
  if (typeof type !== 'number') throw new TypeError(`type expected a number, got ${typeof type}`)
  const allowed = direction === 'up' ? UP_TYPES : DOWN_TYPES
  if (!allowed.has(type)) return `type ${type} does not travel ${direction}`
  const shape = SHAPES.get(type)
  return shape === undefined ? null : shape(body, direction)
}

function securityAlert (body: unknown): string | null {
  if (!isPlainObject(body)) return 'expected a map with "kind" and "detail"'
  if (typeof body.kind !== 'string' || body.kind.length === 0) return '"kind" expected a non-empty text string'
  if (typeof body.detail !== 'string' && !isPlainObject(body.detail)) return '"detail" expected a text string or a map'
  return null
}

function stateUpdate (body: unknown, direction: Direction): string | null {
  if (!isPlainObject(body)) return 'expected a map'
  if (direction === 'up') return isPlainObject(body.reported) ? null : '"reported" expected a map'
  if (!isPlainObject(body.delta)) return '"delta" expected a map'
  return isUint(body.version) ? null : '"version" expected an unsigned integer'
}

/** ProofSubmission and TokenClaim: a snarkjs Groth16 proof and its public signals. */
function proofBody (body: unknown): string | null {
  if (!isPlainObject(body)) return 'expected {"circuit", "proof", "publicSignals"}'
  const { circuit, proof, publicSignals } = body
  if (typeof circuit !== 'string' || circuit.length === 0 || circuit.length > CIRCUIT_CHARS_MAX) {
    return `"circuit" expected a text string of 1 to ${CIRCUIT_CHARS_MAX} characters`
  }
  if (!isPlainObject(proof)) return '"proof" expected a map'
  if (!isDecimals(proof.pi_a, 3)) return '"proof.pi_a" expected 3 decimal strings'
  if (!Array.isArray(proof.pi_b) || proof.pi_b.length !== 3 || !proof.pi_b.every((pair) => isDecimals(pair, 2))) {
    return '"proof.pi_b" expected 3 pairs of decimal strings'
  }
  if (!isDecimals(proof.pi_c, 3)) return '"proof.pi_c" expected 3 decimal strings'
  if (proof.protocol !== undefined && proof.protocol !== 'groth16') return '"proof.protocol" expected "groth16"'
  if (!Array.isArray(publicSignals) || publicSignals.length > PUBLIC_SIGNALS_MAX || !isDecimals(publicSignals, publicSignals.length)) {
    return `"publicSignals" expected at most ${PUBLIC_SIGNALS_MAX} decimal strings`
  }
  return null
}

function ackShape (body: unknown): string | null {
  if (!isPlainObject(body)) return 'expected {"re", "ok", "code", "reason"}'
  const { re, ok, code, reason } = body
  if (!(re instanceof Uint8Array) || re.length !== ID_BYTES) return `"re" expected a byte string of ${ID_BYTES} bytes`
  if (typeof ok !== 'boolean') return '"ok" expected a boolean'
  if (!isUint(code)) return '"code" expected an unsigned integer'
  if (typeof reason !== 'string') return '"reason" expected a text string'
  if (ok && (code !== 0 || reason !== '')) return 'ok true expected code 0 and reason ""'
  if (!ok && (code === 0 || reason === '')) return 'ok false expected a non-zero code and a reason'
  if (!ok && typeof code === 'number' && code < 100 && (REJECT_CODES as Record<string, number>)[reason] !== code) {
    return `code ${code} does not match reason "${reason}"`
  }
  return null
}

/** A map with text keys as decoded: a plain object (never a Map, an array or bytes). */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function isUint (value: unknown): boolean {
  return (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) || (typeof value === 'bigint' && value >= 0n)
}

function isDecimals (value: unknown, length: number): boolean {
  return Array.isArray(value) && value.length === length && value.every((item) => typeof item === 'string' && DECIMAL.test(item))
}
