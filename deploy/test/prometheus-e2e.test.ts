/**
 * The proof that deploy/'s dashboard and alert rules work: a real Prometheus scrapes a real
 * coordinator and two real workers (every second) under a load that produces every outcome and an
 * agent run, then every panel query and template variable of the dashboard is sent to it as
 * Grafana would send it (variables substituted), and every alert rule is loaded by it.
 *
 * A misspelt metric or label is not an error in PromQL, only an empty graph: so the panels must
 * also return data, and the processes must export exactly the metric table in @toolq/shared.
 * The values each panel showed and each alert's state are written to .tmp/prometheus-e2e.md.
 *
 * A third worker of the same pool serves other tools, so the pool has lanes: every diag_* call
 * waits and runs in the lane of the two workers that serve it, not in the pool's own queue. The
 * KEDA ScaledObject's queries, taken from its YAML, must still count those calls.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { METRIC_LABEL_VALUES, METRICS, PROCESS_METRIC_PREFIX } from '@toolq/shared/internal';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startCoordinatorProcess } from '../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../test-support/worker-process.ts';
import {
  expandVariables,
  formatRegexValues,
  panelQueries,
  parseLabelValues,
  queryVariables,
  rateIntervalSeconds,
} from './support/grafana.ts';
import { hasPrometheus, type PrometheusServer, startPrometheus } from './support/prometheus.ts';

const DEPLOY = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = resolve(DEPLOY, '..');
const ALERTS_FILE = join(DEPLOY, 'prometheus/alerts.yml');
const SCALED_OBJECT = join(DEPLOY, 'k8s/keda-scaledobject.yaml');
const TEST_TOOLS = join(ROOT, 'test-support/test-tools.ts');
const dashboard: unknown = JSON.parse(readFileSync(join(DEPLOY, 'grafana/dashboards/toolq.json'), 'utf8'));
const TOKEN = 'e2e-token-0123456789abcdef';
/** /metrics answers only an operator's token, as in deploy/ (compose and the PodMonitor). */
const OPERATOR = 'e2e-operator-0123456789abcd';
const SCRAPE_SECONDS = 1;
/**
 * The outcomes the load produces: all but `unknown`, which takes a worker's death mid-call, and
 * `not_started`, which takes a flow-limited tool (the flow tests count it: flow-limits.test.ts).
 */
const LOAD_OUTCOMES = (METRIC_LABEL_VALUES.outcome ?? []).filter(
  (o) => o !== 'unknown' && o !== 'not_started',
);
/** Waiting on Prometheus: it scrapes and evaluates every second; asked every 250 ms, for up to 45 s. */
const SCRAPES = { timeoutMs: 45_000, intervalMs: 250 };
/** Grafana with "last 15 minutes" on a ~1000 px panel: $__interval rounds up to the scrape interval. */
const BUILTINS = {
  interval: `${SCRAPE_SECONDS}s`,
  rateInterval: `${rateIntervalSeconds(SCRAPE_SECONDS, SCRAPE_SECONDS)}s`,
  range: '15m',
};

/**
 * The core metrics (the METRICS table of packages/shared/src/metrics.ts): a panel over any of them must show data
 * under the load. Worker-side job and skip counters may legitimately be empty (no job skipped).
 */
const CORE = [
  'toolq_tool_calls_total',
  'toolq_tool_duration_seconds',
  'toolq_tool_queue_wait_seconds',
  'toolq_batch_size',
  'toolq_batch_duration_seconds',
  'toolq_batch_overhead_seconds',
  'toolq_late_results_total',
  'toolq_queue_jobs',
  'toolq_workers',
  'toolq_model_tokens_total',
];
const usesCore = (expr: string) =>
  [...expr.matchAll(/\btoolq_[a-z0-9_]+/g)].some((m) =>
    CORE.includes(m[0].replace(/_(bucket|sum|count)$/, '')),
  );

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
type QueryData =
  | { resultType: 'vector'; result: Sample[] }
  | { resultType: 'scalar'; result: [number, string] };

let redis: RedisServer;
let model: Awaited<ReturnType<typeof startScriptedModel>>;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let workers: WorkerProcess[] = [];
let prometheus: PrometheusServer;
let load: ReturnType<typeof startLoad> | undefined;
const report: string[] = [];

if (!hasPrometheus()) {
  throw new Error(
    'prometheus is not on the PATH: apt-get install -y --no-install-recommends prometheus (.ci/run does)',
  );
}

beforeAll(async () => {
  redis = await startRedisServer();
  model = await startScriptedModel(
    toolTurnsScript([{ calls: [{ name: 'diag_echo', input: { value: 'from an agent run' } }] }]),
  );
  [coordinator, ...workers] = await Promise.all([
    startCoordinatorProcess({
      REDIS_URL: redis.url,
      TOOLQ_API_TOKEN: TOKEN,
      TOOLQ_OPERATOR_TOKENS: `prometheus:${OPERATOR}`,
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      TOOLQ_MODEL: 'claude-sonnet-4-6',
    }),
    startWorkerProcess({ redisUrl: redis.url, metrics: true, concurrency: 4 }),
    startWorkerProcess({ redisUrl: redis.url, metrics: true, concurrency: 4 }),
    // Same pool, other tools: the diag_* calls go to the lane of the two workers above.
    startWorkerProcess({ redisUrl: redis.url, metrics: true, concurrency: 4, tools: TEST_TOOLS }),
  ]);
  const hostOf = (url: string) => new URL(url).host;
  prometheus = await startPrometheus({
    intervalSeconds: SCRAPE_SECONDS,
    ruleFiles: [ALERTS_FILE],
    jobs: [
      // The job names of deploy/prometheus/prometheus.yml, which ToolqTargetDown matches.
      { name: 'toolq-coordinator', targets: [hostOf(coordinator.url)], bearerToken: OPERATOR },
      { name: 'toolq-worker', targets: workers.map((w) => hostOf(w.metricsUrl ?? '')) },
    ],
  });
  load = startLoad(coordinator.url);
  // Enough scrapes of the load for rate() over $__rate_interval to see every outcome and the
  // agent run's tokens (a series needs two samples in the window), then a few more scrapes.
  await waitFor(
    'every outcome in rate() over $__rate_interval',
    async () => {
      const data = await query(
        `count by (outcome) (rate(toolq_tool_calls_total[${BUILTINS.rateInterval}]) > 0)`,
      );
      return data.resultType === 'vector' && data.result.length === LOAD_OUTCOMES.length;
    },
    SCRAPES,
  );
  await waitFor(
    'model tokens in rate() over 1m',
    async () => {
      const data = await query('rate(toolq_model_tokens_total[1m]) > 0');
      return data.resultType === 'vector' && data.result.length > 0;
    },
    SCRAPES,
  );
  // Deliberately a few more scrapes of the load, so every panel's window holds some.
  await letTimePass(3 * SCRAPE_SECONDS * 1000);
}, 180_000);

afterAll(async () => {
  const counts = await load?.stop();
  if (counts) report.push('', `Load sent: ${JSON.stringify(counts)}`);
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  writeFileSync(join(ROOT, '.tmp/prometheus-e2e.md'), `${report.join('\n')}\n`);
  await prometheus?.stop();
  coordinator?.child.kill('SIGTERM');
  await Promise.all([coordinator?.exited, ...workers.map((w) => w.stop())]);
  await model?.close();
  await redis?.stop();
});

async function query(expr: string): Promise<QueryData> {
  return prometheus.api<QueryData>('query', { query: expr });
}

const isEmpty = (data: QueryData) => data.resultType === 'vector' && data.result.length === 0;

function show(data: QueryData): string {
  const num = (v: string) => {
    const n = Number(v);
    return Number.isFinite(n) ? String(Number(n.toPrecision(4))) : v;
  };
  if (data.resultType === 'scalar') return num(data.result[1]);
  if (data.result.length === 0) return '(no data)';
  return data.result
    .map((s) => {
      const { __name__: _n, ...labels } = s.metric;
      const name = Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      return `${name ? `{${name}} ` : ''}${num(s.value[1])}`;
    })
    .join('; ');
}

describe('Prometheus scraping a coordinator and three workers under load', () => {
  it('scrapes all four processes', async () => {
    // Over the last minute: one scrape that timed out on a loaded machine is not the question.
    const data = await query('max_over_time(up{job=~"toolq-.*"}[1m])');
    expect(data.resultType).toBe('vector');
    const up = data.resultType === 'vector' ? data.result : [];
    expect(up.map((s) => `${s.metric.job} ${s.value[1]}`).sort()).toEqual([
      'toolq-coordinator 1',
      'toolq-worker 1',
      'toolq-worker 1',
      'toolq-worker 1',
    ]);
  });

  it('answers every request of the load', () => {
    expect(load?.counts.rounds).toBeGreaterThan(3);
    expect(load?.counts.failures).toEqual([]);
  });

  it('gets exactly the metric table of @toolq/shared from the processes: names, types and labels', async () => {
    const metadata = await prometheus.api<Record<string, { type: string }[]>>('metadata');
    const exported = Object.entries(metadata).filter(
      ([name]) => name.startsWith('toolq_') && !name.startsWith(PROCESS_METRIC_PREFIX),
    );
    expect(Object.fromEntries(exported.map(([name, m]) => [name, m[0]?.type]))).toEqual(
      Object.fromEntries(Object.entries(METRICS).map(([name, def]) => [name, def.type])),
    );
    for (const [name, def] of Object.entries(METRICS)) {
      const series = `${name}${def.type === 'histogram' ? '_count' : ''}`;
      const labels = await prometheus.api<string[]>('labels', { 'match[]': series });
      const own = labels.filter((l) => !['__name__', 'job', 'instance', 'component'].includes(l));
      // A labelled series appears only once something was counted; each of these was, but for
      // skipped jobs, calls Redis lost (none is, without a failover), delivery's (no worker dies,
      // no tool has a cache) and flow control's (no tool here is limited: flow-*.test.ts count them).
      const mayBeEmpty = [
        'toolq_worker_skipped_jobs_total',
        'toolq_lost_calls_total',
        'toolq_cache_calls_total',
        'toolq_interrupted_calls_total',
        'toolq_flow_throttled_total',
        'toolq_flow_slot_wait_seconds',
        'toolq_flow_calls',
        'toolq_flow_concurrency_limit',
        'toolq_flow_paused',
        'toolq_approvals_pending',
        'toolq_approvals_decided_total',
      ];
      if (mayBeEmpty.includes(name) && own.length === 0) continue;
      expect(own.sort(), name).toEqual([...def.labels].sort());
    }
    for (const [label, values] of Object.entries(METRIC_LABEL_VALUES)) {
      const seen = await prometheus.api<string[]>(`label/${label}/values`, {
        'match[]': '{__name__=~"toolq_.+"}',
      });
      expect(values, label).toEqual(expect.arrayContaining(seen));
    }
  });
});

describe("the Grafana dashboard's queries, sent to that Prometheus", () => {
  const variables = queryVariables(dashboard);
  const panels = panelQueries(dashboard);

  /** Each variable's options (label_values), resolved in order as Grafana does. */
  async function resolveVariables(selection: 'all' | 'each'): Promise<Record<string, string>> {
    const values: Record<string, string> = {};
    for (const v of variables) {
      const { selector, label } = parseLabelValues(expandVariables(v.query, values, BUILTINS));
      const options = await prometheus.api<string[]>(`label/${label}/values`, { 'match[]': selector });
      expect(options.length, `variable ${v.name} has options`).toBeGreaterThan(0);
      values[v.name] =
        selection === 'all' && v.includeAll && v.allValue ? v.allValue : formatRegexValues(options);
    }
    return values;
  }

  it('resolves every template variable to values from the real series', async () => {
    const values = await resolveVariables('each');
    report.push('# Prometheus end to end', '', '## Template variables', '');
    for (const [name, value] of Object.entries(values)) report.push(`- $${name}: ${value}`);
    expect(values.pool).toBe('default');
    expect(values.tool).toContain('diag_fail');
  });

  it.each([
    ['All selected (as the dashboard opens)', 'all'] as const,
    ['every option selected', 'each'] as const,
  ])('evaluates every panel query without error and with data: %s', async (title, selection) => {
    const values = await resolveVariables(selection);
    report.push('', `## Panels, ${title}, $__rate_interval=${BUILTINS.rateInterval}`, '');
    report.push('| panel | ref | value |', '|---|---|---|');
    const empty: string[] = [];
    for (const q of panels) {
      const expr = expandVariables(q.expr, values, BUILTINS);
      // Throws with Prometheus's error message. A core panel empty over a 4 s window may have
      // missed a scrape on a loaded machine: asked again for a while, as Grafana refreshes.
      let data = await query(expr);
      for (let tries = 0; tries < 40 && usesCore(q.expr) && isEmpty(data); tries++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        data = await query(expr);
      }
      report.push(`| ${q.panel} | ${q.refId} | ${show(data).replaceAll('|', '\\|')} |`);
      if (isEmpty(data) && usesCore(q.expr)) empty.push(`${q.panel} ${q.refId}: ${expr}`);
    }
    expect(empty).toEqual([]);
  });

  it('shows every outcome on "Tool calls/s by outcome"', async () => {
    const q = panels.find((p) => p.panel === 'Tool calls/s by outcome');
    expect(q).toBeDefined();
    const data = await query(
      expandVariables(q?.expr ?? '', await resolveVariables('all'), { ...BUILTINS, rateInterval: '1m' }),
    );
    const outcomes = data.resultType === 'vector' ? data.result.map((s) => s.metric.outcome) : [];
    expect(outcomes.sort()).toEqual([...LOAD_OUTCOMES].sort());
  });
});

describe("the KEDA ScaledObject's queries, sent to that Prometheus", () => {
  const so = parse(readFileSync(SCALED_OBJECT, 'utf8')) as {
    spec: { triggers: { type: string; metadata: { query: string } }[] };
  };
  const queries = so.spec.triggers.map((t) => t.metadata.query);
  const evaluate = async (expr: string) => {
    const data = await query(expr);
    return data.resultType === 'vector' ? Number(data.result[0]?.value[1] ?? Number.NaN) : Number.NaN;
  };

  it('counts calls running in a lane of the pool (its own queue holds none of them)', async () => {
    const active = queries.find((q) => q.includes('state="active"'));
    expect(active).toBeDefined();
    // Calls that keep running in the lane until the test cancels them (a client that goes away does).
    const cancel = new AbortController();
    const batch = fetch(`${coordinator.url}/v1/tool-batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        tool_uses: [
          { id: 'lane1', name: 'diag_sleep', input: { ms: 60_000 } },
          { id: 'lane2', name: 'diag_sleep', input: { ms: 60_000 } },
        ],
        timeout_ms: 60_000,
      }),
      signal: cancel.signal,
    }).then((res) => res.arrayBuffer());
    // They run in a lane: the pool's own active list (what a KEDA redis trigger read) stays empty.
    const client = new Redis(redis.url);
    const running = async (pattern: string) => {
      const keys = await client.keys(pattern);
      const lengths = await Promise.all(keys.map((k) => client.llen(k)));
      return lengths.reduce((a, b) => a + b, 0);
    };
    try {
      await waitFor(
        'the calls running in a lane',
        async () => (await running('toolq:{default.t*}:active')) >= 2,
        SCRAPES,
      );
      expect(await running('toolq:{default}:active')).toBe(0);
    } finally {
      client.disconnect();
    }
    let value = Number.NaN;
    await waitFor(
      'the active query counts the calls in the lane',
      async () => {
        value = await evaluate(active ?? '');
        return value >= 2;
      },
      SCRAPES,
    );
    report.push('', '## KEDA queries', '', `- \`${active}\`: ${value}`);
    for (const q of queries.filter((q) => q !== active)) {
      const v = await evaluate(q);
      report.push(`- \`${q}\`: ${v}`);
      // The backlog query answers a number (0 when workers keep up), never an empty vector.
      expect(Number.isFinite(v), q).toBe(true);
    }
    cancel.abort();
    await batch.catch(() => undefined); // the abort is the point
  });
});

describe('the alert rules, loaded by that Prometheus', () => {
  interface Rule {
    name: string;
    type: string;
    health: string;
    lastError?: string;
    state?: string;
    lastEvaluation: string;
    alerts?: { labels: Record<string, string>; state: string; value: string }[];
  }

  it('puts the error-rate alert of diag_fail in pending under this load (it fires after its for:)', async () => {
    await waitFor(
      'ToolqToolErrorRateHigh pending',
      async () => {
        const data = await prometheus.api<{ alerts: { labels: Record<string, string>; state: string }[] }>(
          'alerts',
        );
        return data.alerts.some(
          (a) => a.labels.alertname === 'ToolqToolErrorRateHigh' && a.labels.tool === 'diag_fail',
        );
      },
      SCRAPES,
    );
  });

  it('loads every rule of alerts.yml and evaluates each without error', async () => {
    const doc = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { rules: { alert?: string }[] }[] };
    const wanted = doc.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter(Boolean);
    let rules: Rule[] = [];
    await waitFor(
      'every rule evaluated',
      async () => {
        const data = await prometheus.api<{ groups: { rules: Rule[] }[] }>('rules');
        rules = data.groups.flatMap((g) => g.rules);
        return rules.length === wanted.length && rules.every((r) => !r.lastEvaluation.startsWith('0001'));
      },
      SCRAPES,
    );
    expect(rules.map((r) => r.name).sort()).toEqual([...wanted].sort());
    report.push('', '## Alerts', '', '| alert | health | state | active alerts |', '|---|---|---|---|');
    for (const r of rules) {
      const active = (r.alerts ?? []).map((a) => `${a.state} ${JSON.stringify(a.labels)}`).join('; ');
      report.push(`| ${r.name} | ${r.health} | ${r.state ?? ''} | ${active || '-'} |`);
    }
    expect(
      rules.filter((r) => r.health !== 'ok' || r.lastError).map((r) => `${r.name}: ${r.lastError}`),
    ).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

interface LoadCounts {
  rounds: number;
  batches: number;
  runs: number;
  failures: string[];
}

/**
 * Rounds of batches that produce every outcome (ok, error, timeout, invalid_input, unknown_tool,
 * cancelled) plus an agent run for the model tokens, until stopped (bounded: at most 3 minutes).
 */
function startLoad(url: string): { counts: LoadCounts; stop(): Promise<LoadCounts> } {
  const counts: LoadCounts = { rounds: 0, batches: 0, runs: 0, failures: [] };
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  let stopped = false;
  const post = async (path: string, body: object, signal?: AbortSignal) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal });
    if (res.status >= 300) counts.failures.push(`${path} ${res.status} ${await res.text()}`);
    else await res.arrayBuffer();
  };
  const round = async (n: number) => {
    const cancelled = new AbortController();
    setTimeout(() => cancelled.abort(), 150);
    await Promise.all([
      post('/v1/tool-batches', {
        tool_uses: [
          { id: 'ok1', name: 'diag_sleep', input: { ms: 20 + (n % 5) * 40 } },
          { id: 'ok2', name: 'diag_echo', input: { value: n } },
          { id: 'err', name: 'diag_fail', input: { message: 'planned failure' } },
          { id: 'bad', name: 'diag_sleep', input: { ms: 'soon' } },
          { id: 'nope', name: 'no_such_tool', input: {} },
        ],
        timeout_ms: 5_000,
      }),
      post('/v1/tool-batches', {
        tool_uses: [{ id: 'slow', name: 'diag_sleep', input: { ms: 1_500 } }],
        timeout_ms: 200,
      }),
      post(
        '/v1/tool-batches',
        { tool_uses: [{ id: 'c', name: 'diag_sleep', input: { ms: 1_500 } }], timeout_ms: 5_000 },
        cancelled.signal,
      ).catch(() => undefined), // the abort is the point
      // A burst that keeps jobs waiting behind the workers' slots.
      post('/v1/tool-batches', {
        tool_uses: Array.from({ length: 24 }, (_, i) => ({
          id: `b${i}`,
          name: 'diag_sleep',
          input: { ms: 100 },
        })),
        timeout_ms: 5_000,
      }),
      n % 4 === 0
        ? post('/v1/runs', { prompt: 'Echo something.', tools: ['diag_echo'] }).then(() => {
            counts.runs++;
          })
        : undefined,
    ]);
    counts.batches += 4;
    counts.rounds++;
  };
  const until = Date.now() + 180_000;
  const loop = (async () => {
    for (let n = 0; !stopped && Date.now() < until; n++) {
      await round(n).catch((err: Error) => counts.failures.push(err.message));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    counts,
    stop: async () => {
      stopped = true;
      await loop;
      return counts;
    },
  };
}
