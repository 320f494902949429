/**
 * Agent runs over HTTP: POST /v1/runs starts runAgent() on this coordinator's dispatcher and
 * answers 202 with an id at once; GET /v1/runs/:id tells how it is going and, once finished, its
 * result. Runs live in this process's memory (the last MAX_RUNS), so they do not survive a restart.
 */

import { randomUUID } from 'node:crypto';
import type Anthropic from '@anthropic-ai/sdk';
import { describeZodIssues, type Logger } from '@toolq/shared';
import type { FastifyInstance } from 'fastify';
import { runAgent } from '../agent/run-agent.ts';
import type { AgentResult } from '../agent/types.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { type RunRequest, runRequestSchema } from './schemas.ts';

const MAX_RUNS = 1_000;

export interface RunsOptions {
  dispatcher: Dispatcher;
  /** Where runs get their model; without it POST /v1/runs answers 503. */
  model?: { apiKey?: string; baseURL?: string; defaultModel?: string; client?: Anthropic };
  logger?: Logger;
}

type RunState =
  | { status: 'running'; startedAt: number }
  | { status: 'done'; startedAt: number; finishedAt: number; result: AgentResult }
  | { status: 'failed'; startedAt: number; finishedAt: number; error: { code: string; message: string } };

export function registerRuns(app: FastifyInstance, options: RunsOptions): void {
  const runs = new Map<string, RunState>();
  const model = options.model;
  const configured = Boolean(model && (model.client || model.apiKey || model.baseURL));

  app.post('/v1/runs', async (request, reply) => {
    if (!configured) {
      return reply.code(503).send({
        error: {
          code: 'NO_MODEL',
          message: 'no model is configured: set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL)',
        },
      });
    }
    const parsed = runRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      return reply.code(400).send({
        error: { code: 'INVALID_REQUEST', message: `invalid body: ${describeZodIssues(parsed.error, 10)}` },
      });
    }
    const id = randomUUID();
    runs.set(id, { status: 'running', startedAt: Date.now() });
    while (runs.size > MAX_RUNS) runs.delete(runs.keys().next().value as string);
    start(id, parsed.data);
    return reply.code(202).send({ run_id: id, status: 'running' });
  });

  app.get<{ Params: { id: string } }>('/v1/runs/:id', async (request, reply) => {
    const run = runs.get(request.params.id);
    if (!run) {
      return reply.code(404).send({
        error: { code: 'NOT_FOUND', message: `no run ${request.params.id} (unknown, or forgotten)` },
      });
    }
    return { run_id: request.params.id, ...describe(run) };
  });

  function start(id: string, body: RunRequest): void {
    const startedAt = Date.now();
    runAgent({
      dispatcher: options.dispatcher,
      ...(model?.client ? { client: model.client } : {}),
      ...(model?.apiKey ? { apiKey: model.apiKey } : {}),
      ...(model?.baseURL ? { baseURL: model.baseURL } : {}),
      ...((body.model ?? model?.defaultModel) ? { model: body.model ?? model?.defaultModel } : {}),
      ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
      ...(body.messages ? { messages: body.messages as Parameters<typeof runAgent>[0]['messages'] } : {}),
      ...(body.system !== undefined ? { system: body.system } : {}),
      ...(body.tools ? { tools: body.tools } : {}),
      ...(body.max_iterations !== undefined ? { maxIterations: body.max_iterations } : {}),
      ...(body.max_tokens !== undefined ? { maxTokens: body.max_tokens } : {}),
      ...(body.stream !== undefined ? { stream: body.stream } : {}),
      ...(body.timeout_ms !== undefined ? { timeoutMs: body.timeout_ms } : {}),
      ...(body.failure_policy ? { failurePolicy: body.failure_policy } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    }).then(
      (result) => runs.has(id) && runs.set(id, { status: 'done', startedAt, finishedAt: Date.now(), result }),
      (err: Error & { code?: string }) => {
        options.logger?.warn({ run: id, err: err.message }, 'run failed');
        const error = { code: err.code ?? 'ERROR', message: err.message };
        if (runs.has(id)) runs.set(id, { status: 'failed', startedAt, finishedAt: Date.now(), error });
      },
    );
  }
}

function describe(run: RunState) {
  if (run.status === 'running') return { status: run.status, elapsed_ms: Date.now() - run.startedAt };
  const base = { elapsed_ms: run.finishedAt - run.startedAt };
  if (run.status === 'failed') return { status: run.status, ...base, error: run.error };
  const r = run.result;
  return {
    status: run.status,
    ...base,
    result: {
      status: r.status,
      text: r.text,
      model: r.model,
      iterations: r.iterations.length,
      calls: r.calls,
      usage: r.usage,
      stats: r.stats,
      messages: r.messages,
    },
  };
}
