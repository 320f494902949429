/**
 * The most calls in flight on one MCP connection. A call waits for a slot in FIFO order and gives
 * up its place when its signal aborts (deadline, cancellation), so a queue of waiting calls never
 * outlives their deadlines.
 */
export class InFlightLimit {
  private active = 0;
  private readonly waiting: { grant: () => void }[] = [];

  constructor(readonly max: number) {}

  get inFlight(): number {
    return this.active;
  }

  /** Resolves with a release function once a slot is free; rejects with the signal's reason. */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          this.active++;
          resolve(this.releaser());
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.grant();
    };
  }
}
