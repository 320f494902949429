/**
 * The live events of runs for this coordinator's SSE streams, read from Redis once however many
 * streams follow them. Each stream first reads the log after its Last-Event-ID itself (XRANGE on
 * the shared connection); once it has caught up it takes the batches of one reader, which follows
 * every run that has a stream here and fans each batch out to that run's streams.
 *
 * The reader. Standalone and Sentinel: one connection of its own, blocked in one XREAD over the
 * event logs of all those runs; when that set changes the read is woken with CLIENT UNBLOCK (sent
 * on the shared connection), and if that is refused (an ACL) it still times out within READ_BLOCK_MS.
 * Cluster: the keys of one XREAD must share a slot, and every run has a slot of its own (its keys
 * are tagged `{r.<runId>}`, run-keys.ts, because one script writes its record and log together),
 * so one blocked read could follow one run only, and a bounded pool of blocked connections could
 * not follow more runs than it has connections. There the reader polls instead: one non-blocking
 * XREAD per followed run every CLUSTER_POLL_MS on the shared connection, no connection added.
 *
 * Exactness. The reader keeps, per run, the id up to which it has read the log. A stream takes a
 * batch only when it had everything up to where the batch starts; otherwise (it fell behind, or the
 * reader went further while the stream was reading the log itself) it reads the log again from its
 * own last id. Every stream writes only ids after its own last one, so nothing is written twice.
 */
import { type Logger, ToolqError } from '@toolq/shared';
import { duplicateConnection, isClusterConnection, type Redis } from '@toolq/shared/internal';
import { FINAL_EVENTS, type RunStatus, type RunStore, type StoredEvent, toEvent } from './run-store.ts';

/** How long the reader blocks at most; a CLIENT UNBLOCK refused leaves a new run's live events this late. */
const READ_BLOCK_MS = 2_000;
/** Cluster: how often followed runs are polled. */
const CLUSTER_POLL_MS = 200;
/** Events one read takes per run. */
const READ_COUNT = 200;
/** How long the reader waits after a failed read before it tries again. */
const RETRY_MS = 500;

export interface EventSink {
  /** Events in order, each after the last one written. */
  write(events: readonly StoredEvent[]): void;
  /** Nothing new for a while: a comment keeps proxies from closing the stream. */
  keepAlive(): void;
}

export interface RunEventHubOptions {
  /** Streams one app may have open on this coordinator (TOOLQ_MAX_STREAMS_PER_APP). */
  maxStreamsPerApp: number;
  /** How often a stream with nothing new sends a keep-alive and checks the run is still there. */
  keepAliveMs?: number;
  /**
   * How long one blocked read waits at most (default READ_BLOCK_MS). Tests lengthen it, so that an
   * event woken at once is told from one that waited for the read to time out on a loaded machine.
   */
  readBlockMs?: number;
  logger?: Logger | undefined;
}

interface Follower {
  runId: string;
  /** The last event id written to the stream (or its Last-Event-ID). */
  cursor: string;
  /** The stream has read an event of the log itself: `cursor` is a real id of the log. */
  readLog: boolean;
  sink: EventSink;
  /** Reading the log itself: the reader's batches are not for it until it has caught up. */
  pumping: boolean;
  ended: boolean;
  end: () => void;
}

interface Followed {
  /** The id up to which the reader has read this run's log. */
  cursor: string;
  followers: Set<Follower>;
}

export class RunEventHub {
  private readonly followed = new Map<string, Followed>();
  /** Every stream, following a run or still reading its log. */
  private readonly followers = new Set<Follower>();
  private readonly openPerApp = new Map<string, number>();
  private reader: Redis | undefined;
  private readerId: number | undefined;
  private loop: Promise<void> | undefined;
  /** Bumped whenever the set of followed runs changes. */
  private generation = 0;
  /** The generation of the read in flight, if one is. */
  private reading: number | undefined;
  private unblocking = false;
  private wakeUp: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly store: RunStore,
    private readonly options: RunEventHubOptions,
  ) {}

  /** Streams open here, per app (for tests and metrics). */
  open(app: string): number {
    return this.openPerApp.get(app) ?? 0;
  }

  /**
   * Counts a stream of `app` against its cap, or throws TOO_MANY_STREAMS (429); call the function
   * returned when the stream ends.
   */
  admit(app: string): () => void {
    const open = this.open(app);
    const max = this.options.maxStreamsPerApp;
    if (open >= max) {
      throw new ToolqError(
        'TOO_MANY_STREAMS',
        `too many event streams: this app has ${open} open on this coordinator, the most it may ` +
          `(TOOLQ_MAX_STREAMS_PER_APP=${max}); close one, or retry later`,
      );
    }
    this.openPerApp.set(app, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.open(app) - 1;
      if (left > 0) this.openPerApp.set(app, left);
      else this.openPerApp.delete(app);
    };
  }

  /** The run's status if it exists and belongs to `app`: its record's two small fields, not its input. */
  async statusFor(app: string, runId: string): Promise<RunStatus | undefined> {
    const [owner, status] = await this.redis.hmget(this.store.keys(runId).record, 'app', 'status');
    return owner === app && status ? (status as RunStatus) : undefined;
  }

  /**
   * Writes the run's events after `after`, then its live ones, until its final event, until it is
   * gone, until `signal` aborts (the client left) or until the hub closes.
   */
  async follow(runId: string, after: string, sink: EventSink, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.closed) return;
    let resolve: () => void = () => undefined;
    const ended = new Promise<void>((r) => {
      resolve = r;
    });
    const keepAliveMs = this.options.keepAliveMs ?? 15_000;
    const timer = setInterval(() => {
      if (f.pumping) return;
      sink.keepAlive();
      // Also how a run that expired while followed (no final event) ends its streams.
      void this.pump(f);
    }, keepAliveMs);
    const f: Follower = {
      runId,
      cursor: after,
      readLog: false,
      sink,
      pumping: false,
      ended: false,
      end: () => {
        if (f.ended) return;
        f.ended = true;
        clearInterval(timer);
        signal.removeEventListener('abort', f.end);
        this.followers.delete(f);
        this.unfollow(f);
        resolve();
      },
    };
    signal.addEventListener('abort', f.end, { once: true });
    this.followers.add(f);
    void this.pump(f);
    await ended;
  }

  /** Reads the log after the follower's cursor until it has caught up, then hands it to the reader. */
  private async pump(f: Follower): Promise<void> {
    if (f.pumping || f.ended) return;
    f.pumping = true;
    try {
      for (;;) {
        // Status first: a finished run has its final event in the log already, so an empty read after it means the end.
        const status = await this.store.status(f.runId);
        const events = await this.store.readEvents(f.runId, f.cursor, READ_COUNT);
        if (f.ended) return;
        if (events.length > 0) {
          f.readLog = true;
          this.deliver(f, events);
          if (f.ended) return;
          continue;
        }
        if (status !== 'running') return f.end();
        // A Last-Event-ID past the end of the log must not move the reader past events yet to come.
        const base = f.readLog ? f.cursor : minId(f.cursor, await this.lastId(f.runId));
        if (f.ended) return;
        const run = this.followRun(f, base);
        // The reader has read further than the log showed us (its batches while we read were not for
        // us): read again. It only ever stands at a real id, so the next read finds those events.
        if (compareIds(run.cursor, f.cursor) <= 0) return;
      }
    } catch (err) {
      if (!f.ended) {
        this.options.logger?.warn({ err: (err as Error).message, run: f.runId }, 'run event stream failed');
      }
      f.end();
    } finally {
      f.pumping = false;
    }
  }

  /** Writes the events after the follower's cursor, up to a final one (which ends it). */
  private deliver(f: Follower, events: readonly StoredEvent[]): void {
    const fresh = events.filter((e) => compareIds(e.id, f.cursor) > 0);
    const final = fresh.findIndex((e) => FINAL_EVENTS.has(e.type));
    const batch = final >= 0 ? fresh.slice(0, final + 1) : fresh;
    const last = batch.at(-1);
    if (!last) return;
    f.sink.write(batch);
    f.cursor = last.id;
    if (final >= 0) f.end();
  }

  private async lastId(runId: string): Promise<string> {
    const [entry] = await this.redis.xrevrange(this.store.keys(runId).events, '+', '-', 'COUNT', 1);
    return entry?.[0] ?? '0-0';
  }

  private followRun(f: Follower, base: string): Followed {
    let run = this.followed.get(f.runId);
    if (!run) {
      run = { cursor: base, followers: new Set() };
      this.followed.set(f.runId, run);
      this.changed();
    }
    run.followers.add(f);
    this.loop ??= this.read();
    return run;
  }

  private unfollow(f: Follower): void {
    const run = this.followed.get(f.runId);
    if (!run?.followers.delete(f) || run.followers.size > 0) return;
    this.followed.delete(f.runId);
    this.changed();
  }

  /** A batch the reader read from `from` on: to each follower that had everything up to `from`. */
  private fanOut(runId: string, from: string, events: readonly StoredEvent[]): void {
    const run = this.followed.get(runId);
    // Followed again since the read was sent, from further back: the next read covers it.
    if (!run || compareIds(run.cursor, from) < 0) return;
    const before = run.cursor;
    const fresh = events.filter((e) => compareIds(e.id, before) > 0);
    const last = fresh.at(-1);
    if (!last) return;
    run.cursor = last.id;
    for (const f of [...run.followers]) {
      if (f.pumping) continue; // it compares run.cursor with its own before it stops pumping
      if (compareIds(f.cursor, before) >= 0) this.deliver(f, fresh);
      else void this.pump(f);
    }
  }

  private async read(): Promise<void> {
    const cluster = isClusterConnection(this.redis);
    let failing = false;
    while (!this.closed) {
      if (this.followed.size === 0) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
        });
        continue;
      }
      const runs = [...this.followed].map(([runId, run]) => ({
        runId,
        key: this.store.keys(runId).events,
        from: run.cursor,
      }));
      try {
        const batches = cluster ? await this.poll(runs) : await this.block(runs);
        failing = false;
        for (const [i, events] of batches.entries()) {
          const run = runs[i];
          if (run && events.length > 0) this.fanOut(run.runId, run.from, events);
        }
      } catch (err) {
        if (this.closed) break;
        // Once per outage, not every RETRY_MS of it; the streams' keep-alives read the log meanwhile.
        if (!failing) {
          this.options.logger?.warn({ err: (err as Error).message }, 'run event reader failed; retrying');
        }
        failing = true;
        await this.sleep(RETRY_MS);
      }
    }
  }

  /** One XREAD over every followed run, on the reader's own connection. */
  private async block(runs: { key: string; from: string }[]): Promise<StoredEvent[][]> {
    const reader = this.readerConnection();
    this.readerId ??= Number(await reader.client('ID'));
    this.reading = this.generation;
    let reply: [string, [string, string[]][]][] | null;
    try {
      reply = (await reader.xread(
        'COUNT',
        READ_COUNT,
        'BLOCK',
        this.options.readBlockMs ?? READ_BLOCK_MS,
        'STREAMS',
        ...runs.map((r) => r.key),
        ...runs.map((r) => r.from),
      )) as [string, [string, string[]][]][] | null;
    } finally {
      this.reading = undefined;
    }
    const byKey = new Map((reply ?? []).map(([key, entries]) => [key, entries]));
    return runs.map((r) => (byKey.get(r.key) ?? []).map(([id, fields]) => toEvent(id, fields)));
  }

  /** Cluster: a non-blocking XREAD per followed run; a pause when none had anything. */
  private async poll(runs: { key: string; from: string }[]): Promise<StoredEvent[][]> {
    const replies = await Promise.all(
      runs.map((r) => this.redis.xread('COUNT', READ_COUNT, 'STREAMS', r.key, r.from)),
    );
    const batches = replies.map((reply) =>
      (reply?.[0]?.[1] ?? []).map(([id, fields]) => toEvent(id, fields as string[])),
    );
    if (batches.every((b) => b.length === 0)) await this.sleep(CLUSTER_POLL_MS);
    return batches;
  }

  private readerConnection(): Redis {
    if (!this.reader) {
      const reader = duplicateConnection(this.redis);
      reader.on('error', () => undefined); // a failed read is logged by the loop
      // A new connection has a new client id: looked up again before the next read.
      reader.on('close', () => {
        this.readerId = undefined;
      });
      this.reader = reader;
    }
    return this.reader;
  }

  /** The set of followed runs changed: the read in flight (if any) is for the old set. */
  private changed(): void {
    this.generation += 1;
    this.wakeUp?.();
    this.wakeUp = undefined;
    if (this.reading !== undefined) void this.unblock();
  }

  private async unblock(): Promise<void> {
    if (this.unblocking) return;
    this.unblocking = true;
    try {
      // The XREAD may not have reached Redis yet (UNBLOCK answers 0): try again, a few times.
      for (let attempt = 0; attempt < 50 && !this.closed; attempt += 1) {
        if (this.reading === undefined || this.reading === this.generation) return;
        const id = this.readerId;
        if (id !== undefined && Number(await this.redis.client('UNBLOCK', id)) === 1) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } catch {
      // Refused (an ACL without CLIENT): the read ends within READ_BLOCK_MS anyway.
    } finally {
      this.unblocking = false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Ends every stream and stops the reader. */
  async close(): Promise<void> {
    this.closed = true;
    for (const f of [...this.followers]) f.end();
    this.wakeUp?.();
    this.reader?.disconnect();
    await this.loop?.catch(() => undefined);
  }
}

/** Stream ids in order; `0` (no id yet) is `0-0`. */
export function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

const minId = (a: string, b: string) => (compareIds(a, b) <= 0 ? a : b);
