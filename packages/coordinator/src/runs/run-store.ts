/**
 * Durable runs in Redis: one record per run (a hash), its event log (a stream), a per-app index
 * (a sorted set by creation time) and a per-app set of unfinished runs (the quota). A run's keys
 * do not expire while it runs and expire `retentionMs` after it finished; the index lives as long
 * as its newest run and drops the entries of expired runs as runs are created.
 *
 * The conversation is stored once: `request` holds its first messages, and a checkpoint's or the
 * result's `messages` are stored without them (`request_messages` says how many were left out);
 * get() and claim() put them back.
 */
import { ToolqError } from '@toolq/shared';
import type { Redis } from '@toolq/shared/internal';
import type { AgentCheckpoint } from '../agent/types.ts';
import { withRequestMessages } from './run-conversation.ts';
import { type RunKeys, runActiveKey, runIndexKey, runKeys } from './run-keys.ts';
import { type RunRedis, withRunScripts } from './run-scripts.ts';

/** A run's status, in its record and in the HTTP answers about it. */
export const RUN_STATUSES = ['running', 'done', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface RunEventInput {
  type: string;
  data: Record<string, unknown>;
  /** Written at most once per run under this key (a successor may repeat what the owner before wrote). */
  once?: string;
}

export interface RunRecord {
  runId: string;
  app: string;
  status: RunStatus;
  createdAt: number;
  updatedAt: number;
  finishedAt?: number;
  /** The coordinator that runs (or last ran) it, and how many coordinators have owned it. */
  owner?: string;
  epoch: number;
  /** Owners that woke it from a park (not takeovers). */
  wakes: number;
  /** Set while it is parked: it waits for approvals only and no coordinator holds it. */
  parkedAt?: number;
  request: unknown;
  checkpoint?: AgentCheckpoint;
  result?: unknown;
  error?: { code: string; message: string };
}

export type Claim =
  | { kind: 'missing' }
  | { kind: 'finished'; status: RunStatus }
  | {
      kind: 'claimed';
      epoch: number;
      request: unknown;
      checkpoint: AgentCheckpoint | undefined;
      app: string;
      createdAt: number;
      /** The last write before this claim: how long the run sat without an owner, at most. */
      updatedAt: number;
      /** When the run was parked, if this claim woke it (run-park.ts). */
      parkedAt: number | undefined;
      /** How many times the run was woken from a park (owners that were not takeovers). */
      wakes: number;
    };

export type CreateOutcome =
  | { created: true }
  | { created: false; app: string; requestHash: string; status: RunStatus };

export interface RunSummary {
  runId: string;
  status: RunStatus;
  createdAt: number;
  updatedAt: number;
}

export interface StoredEvent {
  id: string;
  type: string;
  data: string;
}

export const FINAL_EVENTS: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** How long a new run's index entry outlives the retention before its owner first touches the index. */
const NEW_RUN_INDEX_GRACE_MS = 5_000;

/** Index entries of expired runs checked (and dropped) per run created: keeps the index to about its live runs. */
const INDEX_PRUNE_BATCH = 100;

export class RunStore {
  private readonly redis: RunRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    readonly retentionMs: number,
  ) {
    this.redis = withRunScripts(redis);
  }

  keys(runId: string): RunKeys {
    return runKeys(this.prefix, runId);
  }

  async create(input: {
    runId: string;
    app: string;
    request: unknown;
    requestHash: string;
    now: number;
  }): Promise<CreateOutcome> {
    const k = this.keys(input.runId);
    const reply = await this.redis.toolqRunCreate(
      k.record,
      input.app,
      JSON.stringify(input.request),
      input.requestHash,
      input.now,
    );
    if (reply === 1) {
      const index = runIndexKey(this.prefix, input.app);
      // Never shortens the index's life (another run of the app may be keeping it longer), and
      // lasts until the new run's owner keeps it alive (its status poll, every 2 s): with a
      // retention shorter than that poll, the index of an app with a run running expired.
      const ms = this.retentionMs + NEW_RUN_INDEX_GRACE_MS;
      await this.redis
        .multi()
        .zadd(index, input.now, input.runId)
        .pexpire(index, ms, 'NX')
        .pexpire(index, ms, 'GT')
        .exec();
      await this.pruneIndex(input.app, input.now);
      return { created: true };
    }
    const [app = '', requestHash = '', status = 'running'] = (reply as string[]).map(String);
    return { created: false, app, requestHash, status: status as RunStatus };
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const h = await this.redis.hgetall(this.keys(runId).record);
    if (!h.status || !h.app) return undefined;
    const json = (raw: string | undefined) => (raw ? (JSON.parse(raw) as unknown) : undefined);
    const request = json(h.request);
    const whole = (raw: string | undefined) => withRequestMessages(json(raw), request);
    return {
      runId,
      app: h.app,
      status: h.status as RunStatus,
      createdAt: Number(h.created_at),
      updatedAt: Number(h.updated_at),
      ...(h.finished_at ? { finishedAt: Number(h.finished_at) } : {}),
      ...(h.owner ? { owner: h.owner } : {}),
      epoch: Number(h.epoch ?? 0),
      wakes: Number(h.wakes ?? 0),
      ...(h.parked_at ? { parkedAt: Number(h.parked_at) } : {}),
      request,
      ...(h.checkpoint ? { checkpoint: whole(h.checkpoint) as AgentCheckpoint } : {}),
      ...(h.result ? { result: whole(h.result) } : {}),
      ...(h.error ? { error: json(h.error) as { code: string; message: string } } : {}),
    };
  }

  /** Just the status (undefined once the run expired): cheap enough to ask often. */
  async status(runId: string): Promise<RunStatus | undefined> {
    return ((await this.redis.hget(this.keys(runId).record, 'status')) ?? undefined) as RunStatus | undefined;
  }

  /** The status and app of a run (undefined once it expired). */
  async statusAndApp(runId: string): Promise<{ status: RunStatus; app: string } | undefined> {
    const [status, app] = await this.redis.hmget(this.keys(runId).record, 'status', 'app');
    return status && app ? { status: status as RunStatus, app } : undefined;
  }

  /**
   * The app's runs, newest first; `after` is the last run id of the page before. A page is short
   * only at the end: entries of expired runs are skipped and more are read in their place.
   */
  async list(app: string, options: { limit: number; after?: string }): Promise<RunSummary[]> {
    const index = runIndexKey(this.prefix, app);
    let start = 0;
    if (options.after !== undefined) {
      const rank = await this.redis.zrevrank(index, options.after);
      // The cursor's run expired and its entry was dropped: where it stood is not known any more.
      if (rank === null) return [];
      start = rank + 1;
    }
    const page: RunSummary[] = [];
    while (page.length < options.limit) {
      const want = options.limit - page.length;
      const ids = await this.redis.zrevrange(index, start, start + want - 1);
      if (ids.length === 0) break;
      start += ids.length;
      const rows = await Promise.all(
        ids.map((id) => this.redis.hmget(this.keys(id).record, 'status', 'created_at', 'updated_at')),
      );
      ids.forEach((runId, i) => {
        const [status, createdAt, updatedAt] = rows[i] ?? [];
        if (status) {
          page.push({
            runId,
            status: status as RunStatus,
            createdAt: Number(createdAt),
            updatedAt: Number(updatedAt),
          });
        }
      });
    }
    return page;
  }

  /**
   * Drops index entries of expired runs. Only a run created more than `retentionMs` ago can have
   * expired (it expires `retentionMs` after its finish), so only those are looked at, oldest first.
   */
  private async pruneIndex(app: string, now: number): Promise<void> {
    const index = runIndexKey(this.prefix, app);
    const old = await this.redis.zrangebyscore(
      index,
      '-inf',
      `(${now - this.retentionMs}`,
      'LIMIT',
      0,
      INDEX_PRUNE_BATCH,
    );
    if (old.length === 0) return;
    const exists = await Promise.all(old.map((id) => this.redis.exists(this.keys(id).record)));
    const gone = old.filter((_, i) => exists[i] === 0);
    if (gone.length > 0) await this.redis.zrem(index, ...gone);
  }

  /**
   * Counts a new run against the app's quota of unfinished runs. → 0 when the app has `max`
   * already, else how many it has with this one (1 for an app with no other), its fair place.
   */
  async admit(app: string, runId: string, max: number): Promise<number> {
    return Number(await this.redis.toolqRunAdmit(runActiveKey(this.prefix, app), runId, Date.now(), max));
  }

  /** The run no longer counts against its app's quota (it finished, or was never created). */
  async release(app: string, runId: string): Promise<void> {
    await this.redis.zrem(runActiveKey(this.prefix, app), runId);
  }

  /** The app's unfinished runs as counted, with the time each was admitted. */
  async admitted(app: string): Promise<{ runId: string; at: number }[]> {
    const flat = await this.redis.zrange(runActiveKey(this.prefix, app), '0', '-1', 'WITHSCORES');
    const out: { runId: string; at: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ runId: flat[i] ?? '', at: Number(flat[i + 1]) });
    return out;
  }

  async claim(runId: string, coordinator: string): Promise<Claim> {
    const reply = (await this.redis.toolqRunClaim(this.keys(runId).record, coordinator, Date.now())).map(
      String,
    );
    const [kind, a, b, c, d, e, f, g, h] = reply;
    if (kind === 'missing') return { kind };
    if (kind === 'finished') return { kind, status: a as RunStatus };
    const request = JSON.parse(b ?? 'null') as unknown;
    return {
      kind: 'claimed',
      epoch: Number(a),
      request,
      checkpoint: c ? (withRequestMessages(JSON.parse(c), request) as AgentCheckpoint) : undefined,
      app: d ?? '',
      createdAt: Number(e),
      updatedAt: Number(f),
      parkedAt: g ? Number(g) : undefined,
      wakes: Number(h ?? 0),
    };
  }

  /**
   * The owner's write: events, and optionally a checkpoint or the final status, only while the run
   * is still running and still the owner's. Throws LEASE_LOST or CANCELLED otherwise.
   */
  async write(
    runId: string,
    epoch: number,
    change: {
      events: readonly RunEventInput[];
      /** An AgentCheckpoint, as withoutRequestMessages stores it. */
      checkpoint?: object;
      finish?: { status: 'done'; result: unknown } | { status: 'failed'; error: unknown };
    },
  ): Promise<string[]> {
    const k = this.keys(runId);
    const finish = change.finish;
    const args: (string | number)[] = [
      epoch,
      Date.now(),
      this.retentionMs,
      change.checkpoint ? JSON.stringify(change.checkpoint) : '',
      finish?.status ?? '',
      finish ? (finish.status === 'done' ? 'result' : 'error') : '',
      finish ? JSON.stringify(finish.status === 'done' ? finish.result : finish.error) : '',
    ];
    for (const event of change.events) {
      args.push(event.type, JSON.stringify({ type: event.type, ...event.data }), event.once ?? '');
    }
    const reply = await this.redis.toolqRunWrite(k.record, k.events, k.eventKeys, ...args);
    if (reply === -2) {
      throw new ToolqError('LEASE_LOST', `run ${runId} was taken over by another coordinator`);
    }
    if (reply === -1) throw new ToolqError('CANCELLED', `run ${runId} is no longer running`);
    return reply as string[];
  }

  /** Cancels a running run: status, the `cancelled` event and the calls of its unsaved turn. */
  async cancel(
    runId: string,
    reason: string,
  ): Promise<
    | { kind: 'missing' }
    | { kind: 'finished'; status: RunStatus }
    | { kind: 'cancelled'; checkpoint: AgentCheckpoint | undefined }
  > {
    const k = this.keys(runId);
    const now = Date.now();
    const error = JSON.stringify({ code: 'CANCELLED', message: reason });
    const data = JSON.stringify({ type: 'cancelled', at: now, reason });
    const [kind, a] = (
      await this.redis.toolqRunCancel(k.record, k.events, k.eventKeys, now, this.retentionMs, error, data)
    ).map(String);
    if (kind === 'missing') return { kind };
    if (kind === 'finished') return { kind, status: a as RunStatus };
    return { kind: 'cancelled', checkpoint: a ? (JSON.parse(a) as AgentCheckpoint) : undefined };
  }

  /**
   * Keeps the app's index at least as long as a run that just finished (or is still running:
   * `extraMs` covers the time until the owner touches it again).
   */
  async touchIndex(app: string, extraMs = 0): Promise<void> {
    // Only ever lengthened: a run that finishes must not cut short what a running run's owner set
    // (it did: the index of an app with a run still running expired with its finished ones).
    const index = runIndexKey(this.prefix, app);
    const ms = this.retentionMs + extraMs;
    await this.redis.multi().pexpire(index, ms, 'NX').pexpire(index, ms, 'GT').exec();
  }

  /**
   * How many ms the run's lease (its BullMQ job lock, `lockKey`) is still `token`'s; -1 once it
   * is not (it lapsed, or another coordinator has the job). One round trip.
   */
  async leaseLeft(lockKey: string, token: string): Promise<number> {
    return Number(await this.redis.toolqRunLease(lockKey, token));
  }

  /**
   * The calls the run's log shows started but not finished, by batch name, each batch's
   * tool_use ids in the order they were started: what earlier owners may still have running.
   */
  async unfinishedCalls(runId: string): Promise<Map<string, string[]>> {
    const started = new Map<string, string>();
    let after = '0';
    for (;;) {
      const events = await this.readEvents(runId, after, 500);
      if (events.length === 0) break;
      for (const event of events) {
        if (event.type !== 'tool_started' && event.type !== 'tool_finished') continue;
        const data = JSON.parse(event.data) as { tool_use_id?: string; batch_id?: string };
        if (!data.tool_use_id) continue;
        if (event.type === 'tool_finished') started.delete(data.tool_use_id);
        else if (data.batch_id) started.set(data.tool_use_id, data.batch_id);
      }
      after = events.at(-1)?.id ?? after;
    }
    const batches = new Map<string, string[]>();
    for (const [toolUseId, batchName] of started) {
      batches.set(batchName, [...(batches.get(batchName) ?? []), toolUseId]);
    }
    return batches;
  }

  /** Events after `after` (an event id; `0` from the start), oldest first. */
  async readEvents(runId: string, after: string, count = 200): Promise<StoredEvent[]> {
    const entries = await this.redis.xrange(this.keys(runId).events, `(${after}`, '+', 'COUNT', count);
    return entries.map(([id, fields]) => toEvent(id, fields));
  }
}

/** An entry of a run's event log. */
export function toEvent(id: string, fields: string[]): StoredEvent {
  let type = '';
  let data = '{}';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'type') type = fields[i + 1] ?? '';
    else if (fields[i] === 'data') data = fields[i + 1] ?? '{}';
  }
  return { id, type, data };
}
