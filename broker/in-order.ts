/**
 * Lets work start at once but finish in arrival order: each step's `then` runs only after
 * its own input is ready and every earlier step has finished. The broker keeps one per
 * client, so signature checks of a client's messages run in parallel on the thread pool
 * while its bridge records still leave in the order the messages arrived.
 */
export class InOrder {
  #tail: Promise<unknown> = Promise.resolve()

  run<A, B> (input: Promise<A>, then: (value: A) => Promise<B> | B): Promise<B> {
    const result = Promise.all([input, this.#tail]).then(([value]) => then(value))
    this.#tail = result.catch(() => undefined)
    return result
  }
}
