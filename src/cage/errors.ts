/**
 * Coded errors of the HTTP CAGE (policy engine and audit log), beside the hub's own in
 * src/errors.ts, whose shape they share.
 */
import { MetanodeError } from '../errors.js'

/** A policy rule (or rule set) that is not valid. Nothing was written. */
export class PolicyValidationError extends MetanodeError {
  /** Where the problem is, as a dotted path from what the caller sent: `body.rules.2.match.cidrs.0`. */
  readonly field: string

  constructor (field: string, problem: string) {
    super('MN_ERR_POLICY_INVALID', `${field} ${problem}`, 400)
    this.name = 'PolicyValidationError'
    this.field = field
  }
}

/** A request a `block` rule refused. The message is the rule's reason. */
export class PolicyBlockedError extends MetanodeError {
  readonly ruleId: string

  constructor (ruleId: string, reason: string) {
    super('MN_ERR_POLICY_BLOCKED', reason, 403)
    this.name = 'PolicyBlockedError'
    this.ruleId = ruleId
  }
}

/** A request over a `rate_limit` rule's limit; the reply carries Retry-After. */
export class RateLimitedError extends MetanodeError {
  readonly ruleId: string
  readonly retryAfterS: number

  constructor (ruleId: string, retryAfterS: number, message: string) {
    super('MN_ERR_RATE_LIMITED', message, 429)
    this.name = 'RateLimitedError'
    this.ruleId = ruleId
    this.retryAfterS = retryAfterS
  }
}
