/**
 * Runs one agent run as the owner of its BullMQ job: claims it (bumping the owner epoch, which
 * fences the owner before), resumes runAgent from the saved checkpoint, writes an event per step
 * and a checkpoint after each model response and each batch, and finally the result. Every write
 * is fenced (run-scripts.ts): once another coordinator has the run, nothing of this one lands.
 *
 * What a stale owner may still *do* (not write) is fenced too. An owner that stalls or loses
 * Redis for longer than the job's lock loses its lease while alive; when it comes back, another
 * coordinator may have taken the run over (bumped the epoch) or be about to. So before each model
 * request and before each dispatch of calls the owner confirms both (side by side):
 *   1. the lease: the job's lock still holds its token (run-scripts.ts LEASE). No other
 *      coordinator can claim the run before that lock is gone, so a lapsed lock stops the owner
 *      before anyone else starts, without waiting for the takeover;
 *   2. the epoch: a fenced write, queued after the `tool_started` events of the batch about to go
 *      (or with the `turn_started` of the model request). It lands only if no claim came first.
 * A takeover that lands between 2 and the dispatch reaching Redis finds the stale owner's calls
 * logged as started, by batch name. The new owner, which asks the model again for the unsaved
 * turn, gives a batch of exactly those calls (the same tool_use ids) that same name
 * (`batchId`), and collects it before it sends it (`beforeDispatch`): the dispatcher claims a
 * batch name with SET NX fleet-wide, so whichever of the two dispatches reaches the name first
 * runs the calls, and the other collects them (or, too late, is refused the name and sends
 * nothing). A re-asked response with other tool_use ids holds other calls: they run under their
 * own ids, once each. Batches are otherwise named per owner (`.<epoch>.`), because a new
 * response may hold other calls than the batch of the same place before.
 *
 * A turn left waiting for approvals only is parked (run-park.ts): the owner stops waiting for its
 * batches without answering them and returns the ParkPlan; RunService moves the job to the delayed
 * set, which ends this owner's lease. Whoever is given the job next claims a new epoch, as in a
 * takeover, and collects the saved turn.
 */
import Anthropic from '@anthropic-ai/sdk';
import { type Logger, ToolqError } from '@toolq/shared';
import { coerceError, DEFAULTS, type Redis } from '@toolq/shared/internal';
import { runAgent } from '../agent/run-agent.ts';
import type { AgentCheckpoint, AgentOptions, AgentPersistence } from '../agent/types.ts';
import type { ApprovalOptions } from '../approvals/approval-options.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { type StoredRunRequest, storedRunRequestSchema } from '../http/schemas.ts';
import { FencedWriter } from './fenced-writer.ts';
import { withoutRequestMessages } from './run-conversation.ts';
import { doneEvent, failedEvent, fromAgentEvent, runStarted, textEvent, turnStarted } from './run-events.ts';
import { PARKED, type ParkPlan, ParkWatch } from './run-park.ts';
import { wireRunResult } from './run-result.ts';
import type { RunEventInput, RunStore } from './run-store.ts';
import { writeParked } from './run-wake.ts';

/** Where runs get their model. */
export interface RunModel {
  apiKey?: string;
  baseURL?: string;
  defaultModel?: string;
  client?: Anthropic;
  /** How long one model request may take to answer (TOOLQ_MODEL_TIMEOUT_MS). */
  timeoutMs?: number;
}

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** A run taken over this many times is failed: something in it keeps killing its coordinators. */
export const MAX_OWNERS = 20;

export interface ExecuteOptions {
  store: RunStore;
  dispatcher: Dispatcher;
  coordinatorId: string;
  model: RunModel;
  logger: Logger;
  /** Aborted when the run is cancelled: the model request and every call in flight stop. */
  signal: AbortSignal;
  /** True once this coordinator is shutting down: the run is handed over at its next model turn. */
  handingOver: () => boolean;
  /**
   * How many ms this coordinator's lease on the run (its BullMQ job lock) still has, ≤ 0 once it
   * has none (Infinity: no lock to check); one round trip.
   */
  leaseLeft: () => Promise<number>;
  /** Parking (run-park.ts): Redis, the key prefix, and the soonest expiry worth parking for. */
  park: { redis: Redis; prefix: string; minMs: number };
}

/** The abort reason of a run handed over mid-step at the shutdown bound (not a user's cancel). */
export const HAND_OVER_NOW = new ToolqError(
  'SHUTTING_DOWN',
  'the coordinator is shutting down: handing the run over',
);

/** How the owner's turn with the run ended; a ParkPlan when the run parks (its job is delayed). */
export type ExecuteOutcome = 'finished' | 'not_running' | 'lost' | 'handed_over' | ParkPlan;

export async function executeRun(runId: string, o: ExecuteOptions): Promise<ExecuteOutcome> {
  const claim = await o.store.claim(runId, o.coordinatorId);
  if (claim.kind !== 'claimed') return 'not_running';
  const log = o.logger.child({ run: runId, epoch: claim.epoch });
  const writer = new FencedWriter(o.store, runId, claim.epoch, log, o.leaseLeft);
  const checkpoint = claim.checkpoint;
  const watch = new ParkWatch({
    ...o.park,
    runId,
    app: claim.app,
    approval: (id) => o.dispatcher.approvals.store.get(id),
    leave: (batchName) => o.dispatcher.leave(batchName, claim.app, PARKED),
    logger: log,
  });
  try {
    await writer.write({
      events: [
        runStarted({
          coordinator: o.coordinatorId,
          epoch: claim.epoch,
          ...(claim.epoch > 1
            ? {
                resumedAfter: {
                  iteration: checkpoint?.iteration ?? 0,
                  pendingCalls: checkpoint?.pending?.toolUses.length ?? 0,
                  idleMs: Date.now() - (claim.updatedAt || claim.createdAt),
                  ...(claim.parkedAt === undefined ? {} : { parkedMs: Date.now() - claim.parkedAt }),
                },
              }
            : {}),
        }),
      ],
    });
    // Wakes from a park are not takeovers: a run may wait for any number of approvals.
    if (claim.epoch - claim.wakes > MAX_OWNERS) {
      const takeovers = claim.epoch - 1 - claim.wakes;
      throw new ToolqError('INTERNAL', `the run was taken over ${takeovers} times; giving up`);
    }
    const request = storedRunRequestSchema.parse(claim.request);
    // Calls earlier owners started and nobody saw finish: a batch of exactly these is theirs (see the top).
    const earlier = claim.epoch > 1 ? await o.store.unfinishedCalls(runId) : new Map<string, string[]>();
    const persistence: AgentPersistence = {
      ...(checkpoint ? { checkpoint } : {}),
      beforeModelRequest: async (event) => {
        if (o.handingOver()) throw new ToolqError('SHUTTING_DOWN', 'the coordinator is handing the run over');
        await writer.confirm([turnStarted(event)]);
      },
      save: (cp) => {
        watch.turn(cp.pending);
        return writer.write({
          events: compact([textOfCheckpoint(cp)]),
          checkpoint: withoutRequestMessages(cp, claim.request),
        });
      },
      batchId: (iteration, n, toolUseIds) => {
        for (const [name, started] of earlier) {
          if (name.startsWith(`run.${runId}.${iteration}.`) && sameIds(started, toolUseIds)) return name;
        }
        return `run.${runId}.${iteration}.${claim.epoch}.${n}`;
      },
      beforeDispatch: async (batchName) => {
        await writer.confirm([]);
        return earlier.has(batchName);
      },
      app: claim.app,
    };
    // A resumed turn may be waiting for approvals only: it parks again.
    watch.turn(checkpoint?.pending, true);
    const result = await runAgent({
      ...agentOptions(request, o.model, (input, init) =>
        writer.beforeRequest().then(() => fetch(input, init)),
      ),
      approval: { ...runApproval(runId, request), onRequested: () => watch.requested() },
      dispatcher: o.dispatcher,
      persistence,
      signal: o.signal,
      logger: log,
      onEvent: (event) => {
        const logged = fromAgentEvent(event);
        if (logged) writer.send(logged);
        if (event.type === 'tool_finish') watch.callFinished();
      },
    });
    await writer.write({
      events: compact([
        textEvent(result.iterations.length, result.finalMessage),
        doneEvent(result.status, result.text),
      ]),
      finish: { status: 'done', result: withoutRequestMessages(wireRunResult(result), claim.request) },
    });
    await finished(o.store, claim.app, runId);
    log.info({ app: claim.app, status: result.status, iterations: result.iterations.length }, 'run finished');
    return 'finished';
  } catch (thrown) {
    const parked = thrown === PARKED && !writer.failure ? watch.parked : undefined;
    if (parked) return park(writer, parked, { ...o.park, runId, epoch: claim.epoch }, log);
    const err = writer.failure ?? coerceError(thrown);
    const code = err instanceof ToolqError ? err.code : undefined;
    if (code === 'LEASE_LOST' && writer.unconfirmed) {
      log.warn('the lease could not be confirmed in time: the run goes back to the queue');
      return 'handed_over';
    }
    if (code === 'LEASE_LOST') {
      log.warn('another coordinator took the run over: this one stops');
      return 'lost';
    }
    const forced = code === 'CANCELLED' && o.signal.reason === HAND_OVER_NOW;
    if (o.handingOver() && (code === 'SHUTTING_DOWN' || forced)) return 'handed_over';
    // Cancelled by DELETE (the status and the `cancelled` event are written already), or
    // finished by another owner while this one was away.
    if (code === 'CANCELLED' && (o.signal.aborted || writer.failure)) {
      await finished(o.store, claim.app, runId);
      log.info('the run is not running any more: this one stops');
      return 'not_running';
    }
    const error = { code: code ?? 'ERROR', message: err.message };
    log.warn({ err: err.message }, 'run failed');
    await writer
      .write({ events: [failedEvent(error)], finish: { status: 'failed', error } })
      .catch(() => undefined);
    await finished(o.store, claim.app, runId);
    return 'finished';
  } finally {
    watch.stop();
  }
}

/** The run's events so far, then `run_parked` (fenced): the job may then go to the delayed set. */
async function park(
  writer: FencedWriter,
  plan: ParkPlan,
  at: { redis: Redis; prefix: string; runId: string; epoch: number },
  log: Logger,
): Promise<ExecuteOutcome> {
  try {
    await writer.write({ events: [] });
    await writeParked(at.redis, at.prefix, at, {
      approval_ids: plan.approvalIds,
      wake_by: plan.wakeAt,
    });
  } catch (err) {
    const code = err instanceof ToolqError ? err.code : undefined;
    log.warn({ err: (err as Error).message }, 'could not park the run');
    return code === 'LEASE_LOST' ? 'lost' : 'not_running';
  }
  log.info({ approvals: plan.approvalIds.length, wakeBy: plan.wakeAt }, 'run parked: waiting for approvals');
  return plan;
}

/**
 * After a run's final write: the app's index lives at least as long as the run now does, and the
 * run no longer counts against the app's quota. Best effort: the quota's own check drops a
 * finished run it still counts (RunService.admit).
 */
async function finished(store: RunStore, app: string, runId: string): Promise<void> {
  await Promise.all([store.touchIndex(app), store.release(app, runId)]).catch(() => undefined);
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

function compact(events: (RunEventInput | undefined)[]): RunEventInput[] {
  return events.filter((e): e is RunEventInput => e !== undefined);
}

/** The text of the response a checkpoint has just saved (once per response). */
function textOfCheckpoint(cp: AgentCheckpoint): RunEventInput | undefined {
  if (cp.pending) return textEvent(cp.pending.iteration, cp.pending.message);
  return textEvent(cp.iteration, cp.finalMessage);
}

/**
 * `fenced` is the fetch every HTTP attempt of the run's model requests goes through, the SDK's own
 * retries included: each leaves only on a lease known to hold (FencedWriter.beforeRequest).
 */
function agentOptions(
  body: StoredRunRequest,
  model: RunModel,
  fenced: Fetch,
): Omit<AgentOptions, 'dispatcher'> {
  const chosen = body.model ?? model.defaultModel;
  const client = model.client
    ? model.client.withOptions({ fetch: fenced })
    : model.apiKey
      ? new Anthropic({
          apiKey: model.apiKey,
          ...(model.baseURL ? { baseURL: model.baseURL } : {}),
          fetch: fenced,
        })
      : undefined;
  const timeoutMs = model.timeoutMs ?? (model.client ? undefined : DEFAULTS.modelTimeoutMs);
  return {
    ...(client ? { client } : {}),
    ...(model.apiKey ? { apiKey: model.apiKey } : {}),
    ...(model.baseURL ? { baseURL: model.baseURL } : {}),
    // The client made here from a key takes the default timeout runAgent gives a key's client.
    ...(timeoutMs !== undefined ? { modelTimeoutMs: timeoutMs } : {}),
    ...(chosen ? { model: chosen } : {}),
    ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
    ...(body.messages ? { messages: body.messages as AgentOptions['messages'] } : {}),
    ...(body.system !== undefined ? { system: body.system } : {}),
    // Stored with its tools (a tool set's are resolved when the run is accepted). A run accepted
    // before runs had to name their tools is carried on as it was accepted: every tool.
    tools: body.tools ?? 'all',
    ...(body.max_iterations !== undefined ? { maxIterations: body.max_iterations } : {}),
    ...(body.max_tokens !== undefined ? { maxTokens: body.max_tokens } : {}),
    ...(body.stream !== undefined ? { stream: body.stream } : {}),
    ...(body.timeout_ms !== undefined ? { timeoutMs: body.timeout_ms } : {}),
    ...(body.failure_policy ? { failurePolicy: body.failure_policy } : {}),
    ...(body.priority !== undefined ? { priority: body.priority } : {}),
    ...(body.context ? { context: body.context } : {}),
  };
}

/** A run's approvals: listed with its id, their events on its stream, its own tools and expiry. */
function runApproval(runId: string, body: StoredRunRequest): ApprovalOptions {
  return {
    runId,
    ...(body.approval_tools ? { tools: body.approval_tools } : {}),
    ...(body.approval_timeout_ms === undefined ? {} : { timeoutMs: body.approval_timeout_ms }),
  };
}
