// A small typed event emitter: listeners are isolated from each other and from the SDK's own state machine.

type Args = readonly unknown[];
type Listener<A extends Args> = (...args: A) => void;

/** Reports a listener's exception the way an EventTarget would, without unwinding the caller. */
function report(err: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === 'function') g.reportError(err);
  else
    setTimeout(() => {
      throw err;
    }, 0);
}

export class Emitter<M extends { [K in keyof M]: Args }> {
  /** The set under name K holds only `Listener<M[K]>` (on() adds no other), as emit() relies on; `never` fits them all. */
  private readonly listeners = new Map<keyof M, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof M>(name: K, fn: Listener<M[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(fn);
    return () => this.off(name, fn);
  }

  /** Like on(), removed after the first call. */
  once<K extends keyof M>(name: K, fn: Listener<M[K]>): () => void {
    const off = this.on(name, ((...args: M[K]) => {
      off();
      fn(...args);
    }) as Listener<M[K]>);
    return off;
  }

  off<K extends keyof M>(name: K, fn: Listener<M[K]>): void {
    this.listeners.get(name)?.delete(fn);
  }

  emit<K extends keyof M>(name: K, ...args: M[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of [...set] as Listener<M[K]>[]) {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    }
  }

  listenerCount(name: keyof M): number {
    return this.listeners.get(name)?.size ?? 0;
  }

  clear(): void {
    this.listeners.clear();
  }
}
