/**
 * The Redis keys of durable runs. A run's record, its event log and its event de-duplication set
 * share one Cluster hash tag (`{r.<runId>}`), because one Lua script writes them together; the
 * per-app index, the per-app set of unfinished runs and the channel stand alone.
 */
import { assertKeyPart } from '@toolq/shared/internal';

/** `run_` and 24 hex digits: a new run's random id, or an idempotent run's hash of its key. */
export const RUN_ID_PATTERN = /^run_[0-9a-f]{24}$/;

export interface RunKeys {
  /** Hash: status, app, request, checkpoint, result, owner epoch. */
  record: string;
  /** Stream: the run's events, in order. */
  events: string;
  /** Set: keys of events written once only (a successor repeating a tool_finish, say). */
  eventKeys: string;
}

export function runKeys(prefix: string, runId: string): RunKeys {
  assertKeyPart('runId', runId);
  const base = `${prefix}:{r.${runId}}`;
  return { record: `${base}:run`, events: `${base}:events`, eventKeys: `${base}:evkeys` };
}

/** Sorted set of an app's runs by creation time (ms). */
export function runIndexKey(prefix: string, app: string): string {
  return `${prefix}:runs:index:${app}`;
}

/**
 * Sorted set of an app's runs not finished yet (running or waiting for a slot), by admission time
 * (ms): its size is the app's quota count (TOOLQ_MAX_ACTIVE_RUNS_PER_APP) and a new run's place in
 * the fair order of the runs queue.
 */
export function runActiveKey(prefix: string, app: string): string {
  return `${prefix}:runs:active:${app}`;
}

/** Pub/sub: the id of a run cancelled on some coordinator, for the one running it. */
export function runCancelChannel(prefix: string): string {
  return `${prefix}:runs:cancel`;
}

/**
 * The BullMQ queue every coordinator works on (one job per run, job id = run id). The slash keeps
 * it apart from tool pools, whose names cannot contain one.
 */
export const RUNS_QUEUE = '{runs/agent}';

/**
 * BullMQ's lock of a run's job (`<prefix>:<queue>:<jobId>:lock`, holding the owner's token): the
 * run's lease. Read only, to confirm the lease before the owner talks to the model or dispatches.
 */
export function runLockKey(prefix: string, runId: string): string {
  assertKeyPart('runId', runId);
  return `${prefix}:${RUNS_QUEUE}:${runId}:lock`;
}

/** Both parts of a Redis stream id are unsigned 64-bit numbers. */
const STREAM_ID_PART_MAX = 18_446_744_073_709_551_615n;

/**
 * `<ms>-<seq>` as Redis takes it: a larger part makes XRANGE/XREAD fail, which for an event
 * stream already answered 200 could only end it empty. Checked before anything is answered.
 */
export function isStreamId(id: string): boolean {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return (
    m?.[1] !== undefined &&
    m[2] !== undefined &&
    BigInt(m[1]) <= STREAM_ID_PART_MAX &&
    BigInt(m[2]) <= STREAM_ID_PART_MAX
  );
}
