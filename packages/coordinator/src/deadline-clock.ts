/**
 * One timer for the deadlines of every waiting batch in this process. With thousands of batches in
 * flight, a Node timer per batch was a tenth of the coordinator's memory per pending call; here a
 * batch costs a Set entry under its deadline (ms), shared with the batches of the same millisecond.
 */
export interface Expirable {
  /** Called at (or just after) the deadline it was added for. */
  expire(): void;
}

export class DeadlineClock {
  private readonly due = new Map<number, Set<Expirable>>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;

  add(at: number, item: Expirable): void {
    let items = this.due.get(at);
    if (!items) {
      items = new Set();
      this.due.set(at, items);
    }
    items.add(item);
    if (at < this.armedFor) this.arm(at);
  }

  delete(at: number, item: Expirable): void {
    const items = this.due.get(at);
    if (!items?.delete(item) || items.size > 0) return;
    this.due.delete(at);
    // The timer may stay armed for an empty slot: it then fires, finds nothing and re-arms.
    if (this.due.size === 0) this.disarm();
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    const expired: Expirable[] = [];
    for (const [at, items] of this.due) {
      if (at > now) continue;
      this.due.delete(at);
      expired.push(...items);
    }
    // Items may add themselves again (their next deadline) while expiring.
    for (const item of expired) item.expire();
    let next = Number.POSITIVE_INFINITY;
    for (const at of this.due.keys()) next = Math.min(next, at);
    if (next < this.armedFor) this.arm(next);
  }
}

/** The clock of this process's barriers. */
export const deadlineClock = new DeadlineClock();
