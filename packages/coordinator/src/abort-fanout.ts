/**
 * One `abort` listener per AbortSignal, however many batches wait on it. A caller (the agent loop,
 * an HTTP handler, an app) may pass one signal to hundreds of dispatches; a listener each would
 * trip Node's MaxListenersExceededWarning and keep every finished batch reachable from the signal.
 */
const waiting = new WeakMap<AbortSignal, Set<() => void>>();

/** Runs `onAbort` when the signal aborts (at once if it has); the returned function stops that. */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  if (signal.aborted) {
    onAbort();
    return () => undefined;
  }
  let callbacks = waiting.get(signal);
  if (!callbacks) {
    const own = new Set<() => void>();
    callbacks = own;
    waiting.set(signal, own);
    signal.addEventListener(
      'abort',
      () => {
        waiting.delete(signal);
        for (const callback of own) callback();
      },
      { once: true },
    );
  }
  const own = callbacks;
  own.add(onAbort);
  return () => {
    own.delete(onAbort);
  };
}
