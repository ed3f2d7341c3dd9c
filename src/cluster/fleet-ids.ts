/**
 * What the broker and the HTTP side need of the fleet's record of ids seen (CONNECT nonces,
 * envelope ids, signed-request nonces) in cluster mode: src/cluster/fleet.ts keeps it in Redis.
 */
export interface FleetIds {
  /**
   * Records each (key, id) not seen in the fleet before and resolves true for it, false for
   * a repeat, in one round trip. Rejects when the record cannot be reached: the caller must
   * then refuse or leave unanswered, never accept.
   */
  firstSeen (entries: ReadonlyArray<readonly [key: string, id: string]>): Promise<boolean[]>
}
