/**
 * The HTTP CAGE: the policy engine guarding the hub's HTTP side, and the hash-chained audit
 * log. docs/http-cage.md describes the rules, the defaults and the audit format.
 */
export type { Identity } from './identity.js'
export {
  AuditLog, actorOf, canonicalAuditLine, auditHash, AUDIT_FORMAT, GENESIS_HASH, AUDIT_LIST_LIMIT_MAX, DETAIL_BYTES_MAX,
  type AuditInput, type AuditEntry, type AuditQuery, type AuditHead, type AuditVerifyResult, type AuditVerifyOptions,
} from './audit.js'
export {
  CompiledPolicy, RateLimitState, DEFAULT_RULES, RULES_MAX, POLICY_ROLES, validateRule, validateRuleSet,
  type Rule, type RuleSpec, type RuleMatch, type RuleAction, type Decision, type RequestFacts, type PolicyRole,
} from './policy.js'
export { PolicyStore, RULE_SET_BYTES_MAX, type PolicyStoreOptions, type StoredRule, type ChangeContext } from './policy-store.js'
export { BlockedRequestLog, BLOCKED_LOG_LIMITS_DEFAULT, type BlockedLogLimits, type BlockedRequest } from './blocked-log.js'
export { cage, requestAuditContext, requireAdminIdentity, type CageOptions } from './plugin.js'
export { PolicyValidationError, PolicyBlockedError, RateLimitedError } from './errors.js'
export { parseCidr, parseAddress, cidrContains, addressKey } from './cidr.js'
export { compilePathPattern, requestPath } from './path-pattern.js'
