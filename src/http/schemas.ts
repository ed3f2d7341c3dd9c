/**
 * JSON schemas of the enrolment API (protocol-v1 §8). Validation runs without type
 * coercion and without removing unknown properties, so what is not exactly right is a 400.
 */
import { LIST_LIMIT_MAX as STORE_LIST_LIMIT_MAX, NAME_CHARS_MAX, ROLES } from '../store/index.js'

/** Largest page of GET /v1/devices. */
export const LIST_LIMIT_MAX = Math.min(1_000, STORE_LIST_LIMIT_MAX)
/** Page size of GET /v1/devices when the query gives none. */
export const LIST_LIMIT_DEFAULT = 100

const PUBLIC_KEY_PATTERN = '^[0-9a-fA-F]{64}$'
// 1 to 1000, written out because query values are strings and are not coerced.
const LIMIT_PATTERN = '^(?:[1-9][0-9]{0,2}|1000)$'

/** What a failed `pattern` means, in words, for error messages. */
export const PATTERN_DESCRIPTIONS: Readonly<Record<string, string>> = Object.freeze({
  [PUBLIC_KEY_PATTERN]: 'must be 64 hex characters',
  [LIMIT_PATTERN]: `must be an integer from 1 to ${LIST_LIMIT_MAX}`,
})

export interface EnrolBody {
  publicKey: string
  role: typeof ROLES[number]
  name?: string
}

export interface ListQuery {
  role?: typeof ROLES[number]
  revoked?: 'true' | 'false'
  limit?: string
  after?: string
}

export interface IdParams {
  id: string
}

export const enrolBodySchema = {
  type: 'object',
  required: ['publicKey', 'role'],
  additionalProperties: false,
  properties: {
    publicKey: { type: 'string', pattern: PUBLIC_KEY_PATTERN },
    role: { type: 'string', enum: [...ROLES] },
    name: { type: 'string', minLength: 1, maxLength: NAME_CHARS_MAX },
  },
} as const

export const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    role: { type: 'string', enum: [...ROLES] },
    revoked: { type: 'string', enum: ['true', 'false'] },
    limit: { type: 'string', pattern: LIMIT_PATTERN },
    // Any string is a valid cursor; ids are 32 characters, so longer is certainly a mistake.
    after: { type: 'string', maxLength: 64 },
  },
} as const

export const idParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'string' },
  },
} as const

export const principalSchema = {
  type: 'object',
  required: ['id', 'role', 'name', 'publicKey', 'created', 'revoked'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    role: { type: 'string' },
    name: { type: ['string', 'null'] },
    publicKey: { type: 'string' },
    created: { type: 'integer' },
    revoked: { type: ['integer', 'null'] },
  },
} as const

export const principalListSchema = {
  type: 'object',
  required: ['items', 'next'],
  additionalProperties: false,
  properties: {
    items: { type: 'array', items: principalSchema },
    /** The `after` of the next page, or null on the last page. */
    next: { type: ['string', 'null'] },
  },
} as const
