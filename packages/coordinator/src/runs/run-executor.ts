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
 */
import Anthropic from '@anthropic-ai/sdk';
import { type Logger, ToolqError } from '@toolq/shared';
import { coerceError, DEFAULTS } from '@toolq/shared/internal';
import { runAgent } from '../agent/run-agent.ts';
import type { AgentCheckpoint, AgentOptions, AgentPersistence } from '../agent/types.ts';
import type { ApprovalOptions } from '../approvals/approval-options.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { type StoredRunRequest, storedRunRequestSchema } from '../http/schemas.ts';
import { withoutRequestMessages } from './run-conversation.ts';
import { doneEvent, failedEvent, fromAgentEvent, runStarted, textEvent, turnStarted } from './run-events.ts';
import { wireRunResult } from './run-result.ts';
import type { RunEventInput, RunStore } from './run-store.ts';

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

/** Lease checks whose answers all came back too late to prove it before an owner gives the run up. */
const LEASE_TRIES = 5;

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
}

/** The abort reason of a run handed over mid-step at the shutdown bound (not a user's cancel). */
export const HAND_OVER_NOW = new ToolqError(
  'SHUTTING_DOWN',
  'the coordinator is shutting down: handing the run over',
);

export type ExecuteOutcome = 'finished' | 'not_running' | 'lost' | 'handed_over';

export async function executeRun(runId: string, o: ExecuteOptions): Promise<ExecuteOutcome> {
  const claim = await o.store.claim(runId, o.coordinatorId);
  if (claim.kind !== 'claimed') return 'not_running';
  const log = o.logger.child({ run: runId, epoch: claim.epoch });
  const writer = new FencedWriter(o.store, runId, claim.epoch, log, o.leaseLeft);
  const checkpoint = claim.checkpoint;
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
                },
              }
            : {}),
        }),
      ],
    });
    if (claim.epoch > MAX_OWNERS) {
      throw new ToolqError('INTERNAL', `the run was taken over ${claim.epoch - 1} times; giving up`);
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
      save: (cp) =>
        writer.write({
          events: compact([textOfCheckpoint(cp)]),
          checkpoint: withoutRequestMessages(cp, claim.request),
        }),
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
    const result = await runAgent({
      ...agentOptions(request, o.model, (input, init) =>
        writer.beforeRequest().then(() => fetch(input, init)),
      ),
      approval: runApproval(runId, request),
      dispatcher: o.dispatcher,
      persistence,
      signal: o.signal,
      logger: log,
      onEvent: (event) => {
        const logged = fromAgentEvent(event);
        if (logged) writer.send(logged);
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
  }
}

/**
 * After a run's final write: the app's index lives at least as long as the run now does, and the
 * run no longer counts against the app's quota. Best effort: the quota's own check drops a
 * finished run it still counts (RunService.admit).
 */
async function finished(store: RunStore, app: string, runId: string): Promise<void> {
  await Promise.all([store.touchIndex(app), store.release(app, runId)]).catch(() => undefined);
}

/**
 * One run's writes, in order: the loop's events are sent as they happen without waiting, the
 * checkpoints are awaited; both go through one chain so Redis sees them in the order made. The
 * first refused write (another owner, or no longer running) is kept and fails every later one.
 */
class FencedWriter {
  private chain: Promise<unknown> = Promise.resolve();
  failure: ToolqError | undefined;
  /**
   * A `turn_finished` goes with the next write, which for a response with calls is its checkpoint
   * (saved in the same tick). Sent alone it could land and its checkpoint be refused, a claim
   * between the two (chaos: Redis paused as the turn ended): the log said the turn was saved,
   * and the next owner, resuming from the checkpoint before, asked the model for it again.
   */
  private held: RunEventInput[] = [];
  /** The lease was still held but never confirmed in time: hand the run back rather than drop it. */
  unconfirmed = false;
  /** Until when (this process's clock) the last confirmed lease surely holds. */
  private leaseValidUntil = 0;

  constructor(
    private readonly store: RunStore,
    private readonly runId: string,
    private readonly epoch: number,
    private readonly logger: Logger,
    private readonly leaseLeft: () => Promise<number>,
  ) {}

  /**
   * Before the owner acts outside Redis (a model request, a dispatch): its lease, and its epoch
   * with `events`, in a write after every event sent before. A lost lease fails every later write.
   *
   * The lease is good until the time the check was *sent* plus the ms Redis said it had left (the
   * lock cannot lapse sooner). The owner goes on only while that time is ahead: a reply that comes
   * back later than that (the process was off the CPU, or Redis slow, between the check and its
   * answer) proves nothing about now, so the lease is asked again. What remains unfenced is the
   * instant from this return to the request leaving the process (docs/durable-runs.md).
   */
  async confirm(events: RunEventInput[]): Promise<void> {
    if (this.failure) throw this.failure;
    // Side by side (one round trip's wait): each alone proves that no claim came before it.
    const [until] = await Promise.all([this.leaseUntil(), this.write({ events })]);
    await this.confirmed(until);
  }

  /**
   * Right before each HTTP attempt of a model request (the SDK's retries too, which no
   * beforeModelRequest sees): the lease confirmed last still holds by this clock, or is confirmed
   * again. The last check before the request leaves, as close to the socket as the SDK lets it.
   */
  async beforeRequest(): Promise<void> {
    if (this.failure) throw this.failure;
    if (Date.now() < this.leaseValidUntil) return;
    await this.confirmed(await this.leaseUntil());
  }

  /** Goes on once a lease check proves the lease holds now; asks again while answers come late. */
  private async confirmed(first: number): Promise<void> {
    let until = first;
    for (let tries = 1; until > 0 && Date.now() >= until; tries++) {
      if (tries >= LEASE_TRIES) break;
      until = await this.leaseUntil();
    }
    if (until > Date.now()) {
      this.leaseValidUntil = until;
      return;
    }
    // A lock still held but never confirmed in time (LEASE_TRIES late answers): the run goes back
    // to the queue (executeRun: handed over), not 'lost' — BullMQ would take a job whose lock is
    // still ours as finished, and nobody would carry the run on.
    this.unconfirmed = until > 0;
    this.failure ??= new ToolqError(
      'LEASE_LOST',
      this.unconfirmed
        ? `run ${this.runId}: this coordinator could not confirm its lease in time; handing the run over`
        : `run ${this.runId}: this coordinator's lease lapsed; another one takes the run over`,
    );
    throw this.failure;
  }

  /** The time (this process's clock) until which the lease surely holds; 0 when it is gone. */
  private async leaseUntil(): Promise<number> {
    const sentAt = Date.now();
    const left = await this.leaseLeft();
    return left > 0 ? sentAt + left : 0;
  }

  write(change: Parameters<RunStore['write']>[2]): Promise<void> {
    if (this.held.length > 0) {
      change = { ...change, events: [...this.held, ...change.events] };
      this.held = [];
    }
    const next = this.chain.then(async () => {
      if (this.failure) throw this.failure;
      try {
        await this.store.write(this.runId, this.epoch, change);
      } catch (err) {
        if (err instanceof ToolqError && (err.code === 'LEASE_LOST' || err.code === 'CANCELLED')) {
          this.failure ??= err;
        }
        throw err;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  send(event: RunEventInput): void {
    if (event.type === 'turn_finished') {
      this.held.push(event);
      return;
    }
    this.write({ events: [event] }).catch((err: Error) => {
      if (!this.failure)
        this.logger.warn({ err: err.message, event: event.type }, 'could not log a run event');
    });
  }
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
