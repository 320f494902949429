/**
 * One demo run, end to end: Redis (private unless REDIS_URL is set), worker processes serving the
 * demo tools, a Dispatcher, the model (the scripted one offline, the real API when a key is set),
 * runAgent, and the report. Everything started here is stopped here, on success, error or abort.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import {
  type AgentEvent,
  type AgentOptions,
  type AgentStatus,
  type ApprovalHandler,
  DEFAULT_MODEL,
  Dispatcher,
  type IterationStats,
  type PerformanceReport,
  performanceReport,
  type RunStats,
  runAgent,
  type ToolCallRecord,
  type UsageReport,
} from '@toolq/coordinator';
import { startScriptedModel } from '@toolq/scripted-model';
import { createLogger, loadConfig, ToolqError } from '@toolq/shared';
import { describeRedis } from '@toolq/shared/internal';
import { startRedisServer } from '../../test-support/redis-server.ts';
import { startWorkerProcess } from '../../test-support/worker-process.ts';
import { prepareFilesWorkspace } from './mcp-files.ts';
import { SCENARIOS, type Scenario, type ScenarioName } from './scenarios.ts';

const DEMO_TOOLS = fileURLToPath(new URL('./tools.ts', import.meta.url));

export interface DemoOptions {
  /** Default `competitors`. */
  scenario?: ScenarioName;
  /** Default: the environment (REDIS_URL, ANTHROPIC_API_KEY, TOOLQ_MODEL, …). */
  env?: NodeJS.ProcessEnv;
  /** `auto` (default): the real API when ANTHROPIC_API_KEY is set, else the offline scripted model. */
  model?: 'auto' | 'scripted' | 'api';
  /** Worker processes to start. Default 2. */
  workers?: number;
  /** Default true (early dispatch). */
  stream?: boolean;
  onEvent?: (event: AgentEvent) => void;
  /** A call waiting for approval, and its decision (the payment scenario). Default: onSetup. */
  onApproval?: (line: string) => void;
  /** A line of setup progress (starting Redis, workers, …). */
  onSetup?: (line: string) => void;
  signal?: AbortSignal;
}

export interface DemoReport {
  scenario: ScenarioName;
  title: string;
  prompt: string;
  model: string;
  offline: boolean;
  redis: 'private' | 'external';
  workers: string[];
  status: AgentStatus;
  answer: string;
  iterations: IterationStats[];
  calls: ToolCallRecord[];
  stats: RunStats;
  usage: UsageReport;
  performance: PerformanceReport;
  /** The calls that waited for approval, and how long (the payment scenario). */
  approvals: DemoApproval[];
  /** Setup (Redis, workers) excluded. */
  runMs: number;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const scenario = SCENARIOS[options.scenario ?? 'competitors'];
  const config = loadConfig(options.env ?? process.env);
  const setup = options.onSetup ?? (() => undefined);
  const offline = options.model === 'scripted' || (options.model !== 'api' && !config.anthropicApiKey);
  const stops: (() => Promise<void>)[] = [];
  // Ctrl-C during setup: stop at the next step instead of finishing a setup nobody wants.
  const checkpoint = () => {
    if (options.signal?.aborted) {
      throw new ToolqError('CANCELLED', `the demo was cancelled (${String(options.signal.reason)})`);
    }
  };
  try {
    checkpoint();
    let redisUrl = config.redisUrl;
    // REDIS_CLUSTER_NODES / REDIS_SENTINELS reach the worker processes through the environment.
    let target = config.redis;
    if (!redisUrl && target.mode === 'standalone') {
      setup('starting a private redis-server');
      const redis = await startRedisServer();
      stops.push(redis.stop);
      redisUrl = redis.url;
      target = { mode: 'standalone', url: redisUrl };
    }
    const count = options.workers ?? 2;
    let source: { tools: string } | { mcp: string } = { tools: DEMO_TOOLS };
    if (scenario.source === 'mcp-files') {
      const workspace = prepareFilesWorkspace();
      stops.push(workspace.stop);
      source = { mcp: workspace.configPath };
      setup(`MCP: the filesystem server on ${workspace.dir}, its tools served as fs__<tool>`);
    }
    setup(
      `starting ${count} worker processes (${'mcp' in source ? '--mcp' : '--tools examples/demo/tools.ts'}) on ${describeRedis(target)}`,
    );
    // allSettled: a worker that started must be stopped even when its sibling failed to.
    const started = await Promise.allSettled(
      Array.from({ length: count }, () =>
        startWorkerProcess({
          redisUrl: redisUrl ?? 'redis://127.0.0.1:6379',
          prefix: config.prefix,
          ...source,
          env: { TOOLQ_LOG_LEVEL: process.env.TOOLQ_LOG_LEVEL ?? 'warn' },
        }),
      ),
    );
    const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    for (const worker of workers) stops.push(async () => void (await worker.stop()));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    checkpoint();
    const logger = createLogger({
      name: 'toolq-demo',
      level: config.logLevel === 'info' ? 'warn' : config.logLevel,
    });
    const dispatcher = new Dispatcher({ redis: target, prefix: config.prefix, logger });
    stops.push(() => dispatcher.close());
    await dispatcher.start();

    let client: Anthropic;
    let model: string;
    if (offline) {
      const scripted = await startScriptedModel({ script: scenario.script });
      stops.push(() => scripted.close());
      client = new Anthropic({ apiKey: 'offline-demo', baseURL: scripted.url, maxRetries: 0 });
      model = config.model ?? DEFAULT_MODEL;
      setup(`offline: scripted model at ${scripted.url} (set ANTHROPIC_API_KEY for the real API)`);
    } else {
      client = new Anthropic({
        apiKey: config.anthropicApiKey ?? null,
        ...(config.anthropicBaseUrl ? { baseURL: config.anthropicBaseUrl } : {}),
      });
      model = config.model ?? DEFAULT_MODEL;
      setup(`online: ${model} on the Messages API`);
    }

    const approvals: DemoApproval[] = [];
    const startedAt = Date.now();
    const result = await runAgent({
      dispatcher,
      client,
      model,
      system: scenario.system,
      prompt: scenario.prompt,
      tools: scenario.tools,
      stream: options.stream ?? true,
      logger,
      ...approvalOf(scenario, approvals, options.onApproval ?? setup),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return {
      scenario: scenario.name,
      title: scenario.title,
      prompt: scenario.prompt,
      model,
      offline,
      redis: config.redisUrl ? 'external' : 'private',
      workers: workers.map((w) => w.id),
      status: result.status,
      answer: result.text,
      iterations: result.iterations,
      calls: result.calls,
      stats: result.stats,
      usage: result.usage,
      performance: performanceReport(result.calls),
      approvals,
      runMs: Date.now() - startedAt,
    };
  } finally {
    // Reverse order: the dispatcher before the workers, the workers before their Redis.
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

export interface DemoApproval {
  tool: string;
  input: unknown;
  decision: 'approve' | 'deny';
  waitedMs: number;
}

/**
 * The scenario's approval handler: the offline demo stands in for the person and approves each
 * waiting call after a moment (a coordinator's GET /approvals page is where a person would).
 */
function approvalOf(
  scenario: Scenario,
  approvals: DemoApproval[],
  say: (line: string) => void,
): Pick<AgentOptions, 'approval'> {
  const after = scenario.autoApproveAfterMs;
  if (after === undefined) return {};
  const handler: ApprovalHandler = async (request) => {
    say(`approval: ${request.tool} ${JSON.stringify(request.input)} waits for a person…`);
    await sleep(after);
    approvals.push({ tool: request.tool, input: request.input, decision: 'approve', waitedMs: after });
    say(`approval: approved by demo-approver after ${after} ms`);
    return { decision: 'approve', by: 'demo-approver', reason: 'approved automatically by the offline demo' };
  };
  return { approval: { handler } };
}
