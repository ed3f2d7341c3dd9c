/**
 * A small typed event emitter that runs anywhere (node:events is not browser-safe). The
 * event map lets the compiler check names and listener arguments, as mqtt.js does with
 * `MqttClientEventCallbacks`. Unlike node's emitter, an 'error' event with no listener is
 * dropped rather than thrown: a device must not crash because nobody is listening.
 */
export type EventMap = Record<string, unknown[]>

export class TypedEmitter<Events extends EventMap> {
  #listeners = new Map<keyof Events, Set<(...args: any[]) => void>>()

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events> (event: K, listener: (...args: Events[K]) => void): () => void {
    let set = this.#listeners.get(event)
    if (!set) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener)
    return () => this.off(event, listener)
  }

  once<K extends keyof Events> (event: K, listener: (...args: Events[K]) => void): () => void {
    const off = this.on(event, (...args) => {
      off()
      listener(...args)
    })
    return off
  }

  off<K extends keyof Events> (event: K, listener: (...args: Events[K]) => void): void {
    this.#listeners.get(event)?.delete(listener)
  }

  protected emit<K extends keyof Events> (event: K, ...args: Events[K]): void {
    const set = this.#listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        listener(...args)
      } catch (err) {
        // A throwing listener must not break the client's own bookkeeping; report it on
        // 'error' unless it was an 'error' listener itself (which would loop).
        if (event !== 'error') this.emit('error' as K, ...([err] as unknown as Events[K]))
      }
    }
  }

  protected removeAllListeners (): void {
    this.#listeners.clear()
  }
}
