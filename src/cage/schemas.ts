/**
 * JSON schemas of the policy and audit routes. They catch the shape of a request (unknown
 * properties, wrong types) before any handler runs; the policy validator then checks what a
 * schema cannot say well (a CIDR's host bits, a regex that does not compile, which fields
 * each action needs) and names the field in its message.
 */
import { PATH_PATTERN_CHARS_MAX } from './path-pattern.js'
import {
  ACTION_TYPES, CIDRS_MAX, DESCRIPTION_CHARS_MAX, HEADERS_MAX, HEADER_VALUE_CHARS_MAX, LOCATION_CHARS_MAX, METHODS_MAX,
  POLICY_ROLES, PRINCIPALS_MAX, RATE_LIMIT_KEYS, RATE_MAX_MAX, REASON_CHARS_MAX, RULES_MAX, WINDOW_MS_MAX, WINDOW_MS_MIN,
} from './policy.js'
import { ACTION_CHARS_MAX, ACTOR_CHARS_MAX, AUDIT_LIST_LIMIT_MAX, TARGET_CHARS_MAX } from './audit.js'

/** Page size of GET /v1/audit when the query gives none. */
export const AUDIT_LIST_LIMIT_DEFAULT = 100
/** Largest page of GET /v1/audit (the route asks the log for one entry more). */
export const AUDIT_PAGE_LIMIT_MAX = Math.min(1_000, AUDIT_LIST_LIMIT_MAX - 1)

// Query values are strings and are not coerced, so numbers are patterns.
const INTEGER_PATTERN = '^(?:0|[1-9][0-9]{0,15})$'
// 1 to 1000 (AUDIT_PAGE_LIMIT_MAX).
const LIMIT_PATTERN = '^(?:[1-9][0-9]{0,2}|1000)$'
const ACTION_FILTER_PATTERN = '^[a-z][a-z0-9_]*(?:\\.[a-z][a-z0-9_]*)*(?:\\.\\*)?$'
const HASH_PATTERN = '^[0-9a-f]{64}$'

const stringList = (itemsMax: number, item: Record<string, unknown> = { type: 'string' }) => ({
  type: 'array', minItems: 1, maxItems: itemsMax, items: item,
}) as const

export const ruleMatchSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    methods: stringList(METHODS_MAX, { type: 'string', maxLength: 16 }),
    path: { type: 'string', minLength: 1, maxLength: PATH_PATTERN_CHARS_MAX },
    roles: stringList(POLICY_ROLES.length, { type: 'string', enum: [...POLICY_ROLES] }),
    principals: stringList(PRINCIPALS_MAX, { type: 'string', maxLength: 32 }),
    cidrs: stringList(CIDRS_MAX, { type: 'string', maxLength: 64 }),
    // A map from header name to value: the one place where other properties are the point.
    headers: { type: 'object', maxProperties: HEADERS_MAX, additionalProperties: { type: 'string', maxLength: HEADER_VALUE_CHARS_MAX } },
  },
} as const

/** Every action's fields in one object; which of them each type needs is the validator's job. */
export const ruleActionSchema = {
  type: 'object',
  required: ['type'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: [...ACTION_TYPES] },
    reason: { type: 'string', minLength: 1, maxLength: REASON_CHARS_MAX },
    location: { type: 'string', minLength: 1, maxLength: LOCATION_CHARS_MAX },
    max: { type: 'integer', minimum: 1, maximum: RATE_MAX_MAX },
    windowMs: { type: 'integer', minimum: WINDOW_MS_MIN, maximum: WINDOW_MS_MAX },
    key: { type: 'string', enum: [...RATE_LIMIT_KEYS] },
  },
} as const

const ruleProperties = {
  id: { type: 'string', minLength: 1, maxLength: 64 },
  description: { type: 'string', minLength: 1, maxLength: DESCRIPTION_CHARS_MAX },
  match: ruleMatchSchema,
  action: ruleActionSchema,
} as const

export const ruleInputSchema = {
  type: 'object',
  required: ['match', 'action'],
  additionalProperties: false,
  properties: ruleProperties,
} as const

export const replaceBodySchema = {
  type: 'object',
  required: ['rules'],
  additionalProperties: false,
  properties: {
    rules: { type: 'array', maxItems: RULES_MAX, items: ruleInputSchema },
  },
} as const

export const createBodySchema = {
  type: 'object',
  required: ['match', 'action'],
  additionalProperties: false,
  properties: {
    ...ruleProperties,
    /** 1-based place in evaluation order; the end when absent. */
    position: { type: 'integer', minimum: 1, maximum: RULES_MAX },
  },
} as const

export const patchBodySchema = {
  type: 'object',
  minProperties: 1,
  additionalProperties: false,
  properties: {
    description: { type: ['string', 'null'], maxLength: DESCRIPTION_CHARS_MAX },
    match: ruleMatchSchema,
    action: ruleActionSchema,
    position: { type: 'integer', minimum: 1, maximum: RULES_MAX },
  },
} as const

export const ruleIdParamsSchema = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', maxLength: 64 } },
} as const

export const storedRuleSchema = {
  type: 'object',
  required: ['id', 'position', 'description', 'match', 'action', 'created', 'updated'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    position: { type: 'integer' },
    description: { type: ['string', 'null'] },
    match: ruleMatchSchema,
    action: ruleActionSchema,
    created: { type: 'integer' },
    updated: { type: 'integer' },
  },
} as const

export const ruleListSchema = {
  type: 'object',
  required: ['rules'],
  additionalProperties: false,
  properties: { rules: { type: 'array', items: storedRuleSchema } },
} as const

export const auditQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    action: { type: 'string', maxLength: ACTION_CHARS_MAX + 2, pattern: ACTION_FILTER_PATTERN },
    actor: { type: 'string', minLength: 1, maxLength: ACTOR_CHARS_MAX },
    target: { type: 'string', minLength: 1, maxLength: TARGET_CHARS_MAX },
    since: { type: 'string', pattern: INTEGER_PATTERN },
    until: { type: 'string', pattern: INTEGER_PATTERN },
    after: { type: 'string', pattern: INTEGER_PATTERN },
    before: { type: 'string', pattern: INTEGER_PATTERN },
    order: { type: 'string', enum: ['asc', 'desc'] },
    limit: { type: 'string', pattern: LIMIT_PATTERN },
  },
} as const

export const auditEntrySchema = {
  type: 'object',
  required: ['seq', 'ts', 'actor', 'action', 'target', 'source', 'detail', 'prevHash', 'hash'],
  additionalProperties: false,
  properties: {
    seq: { type: 'integer' },
    ts: { type: 'integer' },
    actor: { type: 'string' },
    action: { type: 'string' },
    target: { type: ['string', 'null'] },
    source: { type: ['string', 'null'] },
    // Free-form by design: each action keeps its own facts.
    detail: { type: 'object', additionalProperties: true },
    prevHash: { type: 'string' },
    hash: { type: 'string' },
  },
} as const

export const auditPageSchema = {
  type: 'object',
  required: ['items', 'next'],
  additionalProperties: false,
  properties: {
    items: { type: 'array', items: auditEntrySchema },
    /** The cursor of the next page (`after` ascending, `before` descending), or null on the last. */
    next: { type: ['integer', 'null'] },
  },
} as const

export const verifyQuerySchema = {
  type: 'object',
  additionalProperties: false,
  // draft-07 `dependencies`: an anchor is a seq and its hash, both or neither.
  dependencies: { anchorSeq: ['anchorHash'], anchorHash: ['anchorSeq'] },
  properties: {
    anchorSeq: { type: 'string', pattern: INTEGER_PATTERN },
    anchorHash: { type: 'string', pattern: HASH_PATTERN },
  },
} as const

export const verifyResultSchema = {
  type: 'object',
  required: ['ok', 'entries'],
  additionalProperties: false,
  properties: {
    ok: { type: 'boolean' },
    entries: { type: 'integer' },
    head: {
      type: ['object', 'null'],
      required: ['seq', 'hash'],
      additionalProperties: false,
      properties: { seq: { type: 'integer' }, hash: { type: 'string' } },
    },
    brokenAt: { type: 'integer' },
    reason: { type: 'string' },
  },
} as const

export interface RuleIdParams {
  id: string
}

export interface AuditQueryString {
  action?: string
  actor?: string
  target?: string
  since?: string
  until?: string
  after?: string
  before?: string
  order?: 'asc' | 'desc'
  limit?: string
}

export interface VerifyQueryString {
  anchorSeq?: string
  anchorHash?: string
}
