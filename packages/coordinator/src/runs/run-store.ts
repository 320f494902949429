/**
 * Durable runs in Redis: one record per run (a hash), its event log (a stream) and a per-app index
 * (a sorted set by creation time). Everything expires `retentionMs` after the run's last change.
 */
import { ToolqError } from '@toolq/shared';
import type { Redis } from '@toolq/shared/internal';
import type { AgentCheckpoint } from '../agent/types.ts';
import { type RunKeys, runIndexKey, runKeys } from './run-keys.ts';
import { type RunRedis, withRunScripts } from './run-scripts.ts';

export type RunStatus = 'running' | 'done' | 'failed' | 'cancelled';

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
      this.retentionMs,
    );
    if (reply === 1) {
      const index = runIndexKey(this.prefix, input.app);
      await this.redis.multi().zadd(index, input.now, input.runId).pexpire(index, this.retentionMs).exec();
      return { created: true };
    }
    const [app = '', requestHash = '', status = 'running'] = (reply as string[]).map(String);
    return { created: false, app, requestHash, status: status as RunStatus };
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const h = await this.redis.hgetall(this.keys(runId).record);
    if (!h.status || !h.app) return undefined;
    const json = (raw: string | undefined) => (raw ? (JSON.parse(raw) as unknown) : undefined);
    return {
      runId,
      app: h.app,
      status: h.status as RunStatus,
      createdAt: Number(h.created_at),
      updatedAt: Number(h.updated_at),
      ...(h.finished_at ? { finishedAt: Number(h.finished_at) } : {}),
      ...(h.owner ? { owner: h.owner } : {}),
      epoch: Number(h.epoch ?? 0),
      request: json(h.request),
      ...(h.checkpoint ? { checkpoint: json(h.checkpoint) as AgentCheckpoint } : {}),
      ...(h.result ? { result: json(h.result) } : {}),
      ...(h.error ? { error: json(h.error) as { code: string; message: string } } : {}),
    };
  }

  /** Just the status (undefined once the run expired): cheap enough to ask often. */
  async status(runId: string): Promise<RunStatus | undefined> {
    return ((await this.redis.hget(this.keys(runId).record, 'status')) ?? undefined) as RunStatus | undefined;
  }

  /** The app's runs, newest first; `after` is the last run id of the page before. */
  async list(app: string, options: { limit: number; after?: string }): Promise<RunSummary[]> {
    const index = runIndexKey(this.prefix, app);
    let start = 0;
    if (options.after !== undefined) {
      const rank = await this.redis.zrevrank(index, options.after);
      // The cursor's run expired: nothing older than it is left either (runs expire oldest first).
      if (rank === null) return [];
      start = rank + 1;
    }
    const ids = await this.redis.zrevrange(index, start, start + options.limit - 1);
    const rows = await Promise.all(
      ids.map((id) => this.redis.hmget(this.keys(id).record, 'status', 'created_at', 'updated_at')),
    );
    const gone = ids.filter((_, i) => !rows[i]?.[0]);
    if (gone.length > 0) await this.redis.zrem(index, ...gone);
    return ids.flatMap((runId, i) => {
      const [status, createdAt, updatedAt] = rows[i] ?? [];
      return status
        ? [{ runId, status: status as RunStatus, createdAt: Number(createdAt), updatedAt: Number(updatedAt) }]
        : [];
    });
  }

  async claim(runId: string, coordinator: string): Promise<Claim> {
    const reply = (await this.redis.toolqRunClaim(this.keys(runId).record, coordinator, Date.now())).map(
      String,
    );
    const [kind, a, b, c, d, e, f] = reply;
    if (kind === 'missing') return { kind };
    if (kind === 'finished') return { kind, status: a as RunStatus };
    return {
      kind: 'claimed',
      epoch: Number(a),
      request: JSON.parse(b ?? 'null') as unknown,
      checkpoint: c ? (JSON.parse(c) as AgentCheckpoint) : undefined,
      app: d ?? '',
      createdAt: Number(e),
      updatedAt: Number(f),
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
      checkpoint?: AgentCheckpoint;
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

  /** Keeps the app's index as long as its newest-changed run. */
  async touchIndex(app: string): Promise<void> {
    await this.redis.pexpire(runIndexKey(this.prefix, app), this.retentionMs);
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
