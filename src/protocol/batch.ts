/**
 * Batches (§4): an untagged CBOR array of 1 to 256 envelopes, signed or not.
 */
import { assertBytes, concatBytes } from './bytes.js'
import { encodeHead } from './cbor.js'
import { readHead, walkWhole } from './cbor-scan.js'
import { BATCH_ITEMS_MAX, CBOR_DEPTH_MAX, COSE_SIGN1_TAG } from './constants.js'

/**
 * A batch of already-encoded envelopes (from encodeEnvelope or signEnvelope), spliced
 * byte for byte, so each item's bytes, and so its signature, are unchanged.
 */
export function encodeBatch (items: Uint8Array[]): Uint8Array {
  if (!Array.isArray(items)) throw new TypeError('items expected an array of encoded envelopes')
  if (items.length < 1 || items.length > BATCH_ITEMS_MAX) {
    throw new TypeError(`items expected 1 to ${BATCH_ITEMS_MAX} envelopes, got ${items.length}`)
  }
  items.forEach((item, i) => {
    assertBytes(`items[${i}]`, item)
    try {
      // One level less than on the wire: the batch array itself is the outer level.
      walkWhole(item, 0, item.length, { strict: false, depthMax: CBOR_DEPTH_MAX - 1 })
    } catch (err) {
      throw new TypeError(`items[${i}] expected one CBOR item: ${(err as Error).message}`)
    }
    const head = readHead(item, 0, item.length)
    if (head.major !== 5 && !(head.major === 6 && head.value === COSE_SIGN1_TAG)) {
      throw new TypeError(`items[${i}] expected an envelope map or a COSE_Sign1`)
    }
  })
  return concatBytes(encodeHead(4, items.length), ...items)
}
