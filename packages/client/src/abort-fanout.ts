/**
 * One 'abort' listener per caller signal, however many calls share it: a signal handed to a
 * hundred concurrent calls would otherwise carry a hundred listeners (and Node's
 * MaxListenersExceededWarning) until they end.
 */
const subscribers = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `fn` when `signal` aborts; the returned function unsubscribes. */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = subscribers.get(signal);
  if (!set) {
    const fresh = new Set<() => void>();
    subscribers.set(signal, fresh);
    signal.addEventListener(
      'abort',
      () => {
        for (const subscriber of [...fresh]) subscriber();
        fresh.clear();
      },
      { once: true },
    );
    set = fresh;
  }
  set.add(fn);
  const own = set;
  return () => {
    own.delete(fn);
  };
}
