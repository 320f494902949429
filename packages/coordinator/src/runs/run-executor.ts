/**
 * Runs one agent run as the owner of its BullMQ job: claims it (bumping the owner epoch, which
 * fences the owner before), resumes runAgent from the saved checkpoint, writes an event per step
 * and a checkpoint after each model response and each batch, and finally the result. Every write
 * is fenced (run-scripts.ts): once another coordinator has the run, nothing of this one lands.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { type Logger, ToolqError } from '@toolq/shared';
import { coerceError } from '@toolq/shared/internal';
import { runAgent } from '../agent/run-agent.ts';
import type { AgentCheckpoint, AgentOptions, AgentPersistence, AgentResult } from '../agent/types.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { type RunRequest, runRequestSchema } from '../http/schemas.ts';
import { doneEvent, failedEvent, fromAgentEvent, runStarted, textEvent, turnStarted } from './run-events.ts';
import { type RunEventInput, type RunStore, withoutRequestMessages } from './run-store.ts';

/** Where runs get their model. */
export interface RunModel {
  apiKey?: string;
  baseURL?: string;
  defaultModel?: string;
  client?: Anthropic;
  /** How long one model request may take to answer (TOOLQ_MODEL_TIMEOUT_MS). */
  timeoutMs?: number;
}

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
  const writer = new FencedWriter(o.store, runId, claim.epoch, log);
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
    const request = runRequestSchema.parse(claim.request);
    const persistence: AgentPersistence = {
      ...(checkpoint ? { checkpoint } : {}),
      beforeModelRequest: async (event) => {
        if (o.handingOver()) throw new ToolqError('SHUTTING_DOWN', 'the coordinator is handing the run over');
        await writer.write({ events: [turnStarted(event)] });
      },
      save: (cp) =>
        writer.write({
          events: compact([textOfCheckpoint(cp)]),
          checkpoint: withoutRequestMessages(cp, claim.request),
        }),
      batchId: (iteration, n) => `run.${runId}.${iteration}.${claim.epoch}.${n}`,
      app: claim.app,
    };
    const result = await runAgent({
      ...agentOptions(request, o.model),
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
      finish: { status: 'done', result: withoutRequestMessages(describeResult(result), claim.request) },
    });
    await finished(o.store, claim.app, runId);
    log.info({ app: claim.app, status: result.status, iterations: result.iterations.length }, 'run finished');
    return 'finished';
  } catch (thrown) {
    const err = writer.failure ?? coerceError(thrown);
    const code = err instanceof ToolqError ? err.code : undefined;
    if (code === 'LEASE_LOST') {
      log.warn('another coordinator took the run over: this one stops');
      return 'lost';
    }
    const forced = code === 'CANCELLED' && o.signal.reason === HAND_OVER_NOW;
    if (o.handingOver() && (code === 'SHUTTING_DOWN' || forced)) return 'handed_over';
    // Cancelled by DELETE: the status and the `cancelled` event are written already.
    if (code === 'CANCELLED' && (o.signal.aborted || writer.failure)) {
      await finished(o.store, claim.app, runId);
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

  constructor(
    private readonly store: RunStore,
    private readonly runId: string,
    private readonly epoch: number,
    private readonly logger: Logger,
  ) {}

  write(change: Parameters<RunStore['write']>[2]): Promise<void> {
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
    this.write({ events: [event] }).catch((err: Error) => {
      if (!this.failure)
        this.logger.warn({ err: err.message, event: event.type }, 'could not log a run event');
    });
  }
}

function compact(events: (RunEventInput | undefined)[]): RunEventInput[] {
  return events.filter((e): e is RunEventInput => e !== undefined);
}

/** The text of the response a checkpoint has just saved (once per response). */
function textOfCheckpoint(cp: AgentCheckpoint): RunEventInput | undefined {
  if (cp.pending) return textEvent(cp.pending.iteration, cp.pending.message);
  return textEvent(cp.iteration, cp.finalMessage);
}

function agentOptions(body: RunRequest, model: RunModel): Omit<AgentOptions, 'dispatcher'> {
  const chosen = body.model ?? model.defaultModel;
  return {
    ...(model.client ? { client: model.client } : {}),
    ...(model.apiKey ? { apiKey: model.apiKey } : {}),
    ...(model.baseURL ? { baseURL: model.baseURL } : {}),
    ...(model.timeoutMs !== undefined ? { modelTimeoutMs: model.timeoutMs } : {}),
    ...(chosen ? { model: chosen } : {}),
    ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
    ...(body.messages ? { messages: body.messages as AgentOptions['messages'] } : {}),
    ...(body.system !== undefined ? { system: body.system } : {}),
    ...(body.tools ? { tools: body.tools } : {}),
    ...(body.max_iterations !== undefined ? { maxIterations: body.max_iterations } : {}),
    ...(body.max_tokens !== undefined ? { maxTokens: body.max_tokens } : {}),
    ...(body.stream !== undefined ? { stream: body.stream } : {}),
    ...(body.timeout_ms !== undefined ? { timeoutMs: body.timeout_ms } : {}),
    ...(body.failure_policy ? { failurePolicy: body.failure_policy } : {}),
  };
}

/** What GET /v1/runs/:id answers as `result` once a run is done. */
export function describeResult(r: AgentResult) {
  return {
    status: r.status,
    text: r.text,
    model: r.model,
    iterations: r.iterations.length,
    calls: r.calls,
    usage: r.usage,
    stats: r.stats,
    messages: r.messages,
  };
}
