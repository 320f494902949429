/** Markdown for a suite run: the environment, one table per benchmark, and the targets of issue 5. */

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SYSTEM_LABEL, type System } from './barrier-overhead.ts';
import { renderFlow } from './flow.ts';
import { HTTP_PATH_LABEL, type HttpPath } from './http-vs-library.ts';
import { median, ratio, type Summary } from './stats.ts';
import type { SuiteResult } from './suite.ts';
import type { ThroughputRow } from './throughput.ts';

export const ANALYSIS_FILE = fileURLToPath(new URL('./analysis.md', import.meta.url));

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}
export const fmtX = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const pcts = (s: Summary) => [fmtMs(s.p50), fmtMs(s.p95), fmtMs(s.p99)];

export function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  const align = headers.map((_, i) => (i === 0 ? '---' : '---:'));
  return [line(headers), `|${align.join('|')}|`, ...rows.map(line)].join('\n');
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
  why: string;
}

const verdict = (met: boolean | undefined) =>
  met === undefined ? 'not measured' : met ? '**met**' : '**not met**';

export function checkTargets(r: SuiteResult): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const row = (size: number, system: System) =>
    r.overhead.find((o) => o.size === size && o.system === system);
  const t10 = row(10, 'toolq');
  const p10 = row(10, 'plain');
  const p50x = ratio(t10?.overhead.p50 ?? Number.NaN, p10?.overhead.p50 ?? Number.NaN);
  const p99x = ratio(t10?.overhead.p99 ?? Number.NaN, p10?.overhead.p99 ?? Number.NaN);
  const measured10 = Number.isFinite(p50x);
  checks.push({
    target: 'Batch of 10: p50 overhead ≤ 0.6 × plain BullMQ barrier',
    measured: measured10
      ? `${fmtX(p50x)} (toolq ${fmtMs(t10?.overhead.p50 ?? Number.NaN)} ms vs plain ${fmtMs(p10?.overhead.p50 ?? Number.NaN)} ms)`
      : '—',
    met: measured10 ? p50x <= 0.6 : undefined,
    why: (() => {
      const t1 = row(1, 'toolq');
      const p1 = row(1, 'plain');
      return (
        'toolq sends a batch as one job per live worker (chunks); what is left is the enqueue round trip and ' +
        'BullMQ fetching a job (marker wake-up, then moveToActive); ' +
        `batch of 1 (one job for both): toolq ${fmtMs(t1?.overhead.p50 ?? Number.NaN)} ms vs plain ${fmtMs(p1?.overhead.p50 ?? Number.NaN)} ms. ` +
        'See the analysis'
      );
    })(),
  });
  checks.push({
    target: 'Batch of 10: p99 overhead ≤ 1.0 × plain BullMQ barrier',
    measured: measured10
      ? `${fmtX(p99x)} (toolq ${fmtMs(t10?.overhead.p99 ?? Number.NaN)} ms vs plain ${fmtMs(p10?.overhead.p99 ?? Number.NaN)} ms)`
      : '—',
    met: measured10 ? p99x <= 1.0 : undefined,
    why: 'tail of the same fetch path, plus CPU contention on 2 cores; see the analysis',
  });

  const toolqLost = toolqLostTotal(r);
  const plainLost =
    r.startup.plain.lost + r.overhead.filter((o) => o.system === 'plain').reduce((n, o) => n + o.lost, 0);
  checks.push({
    target: 'Zero lost completions for toolq where the plain barrier loses some',
    measured: `toolq ${toolqLost.lost} of ${fmtInt(toolqLost.calls)} calls; plain barrier ${plainLost} (${r.startup.plain.lost} of ${fmtInt(r.startup.calls)} in the start-up burst)`,
    met: toolqLost.lost === 0,
    why: 'toolq results are written to a per-batch record and a per-coordinator reply stream read from its start; the plain barrier subscribes to QueueEvents at `$` and misses what completes before its first XREAD',
  });

  const counts = [...new Set(r.throughput.map((t) => t.workers))];
  const tputRatios = counts.map((n) => {
    const tq = r.throughput.find((t) => t.workers === n && t.system === 'toolq');
    const raw = r.throughput.find((t) => t.workers === n && t.system === 'raw');
    return { n, x: ratio(median(tq?.rates ?? []), median(raw?.rates ?? [])), tq, raw };
  });
  checks.push({
    target: 'Throughput ≥ 0.9 × raw BullMQ with the same worker processes',
    measured: tputRatios.map(({ n, x }) => `${n} proc: ${fmtX(x)}`).join(', '),
    met: tputRatios.length ? tputRatios.every(({ x }) => x >= 0.9) : undefined,
    why:
      'CPU-bound: all processes share the cores; CPU µs per call, coordinator + workers + Redis, toolq vs raw: ' +
      tputRatios
        .map(({ n, tq, raw }) => `${n} proc ${fmtInt(cpuTotal(tq))} vs ${fmtInt(cpuTotal(raw))}`)
        .join('; ') +
      '. See the analysis',
  });

  const comp = r.competitor.find((c) => c.system === 'toolq');
  checks.push({
    target: `Competitor scenario (${r.config.competitor.calls} × ${r.config.competitor.sleepMs} ms) within 1.04 × its slowest call (p50)`,
    measured: comp
      ? `p50 ${fmtX(comp.wallOverSlowest.p50)}, p99 ${fmtX(comp.wallOverSlowest.p99)}; speed-up vs sequential ${comp.speedUp.p50.toFixed(2)}×`
      : '—',
    met: comp && Number.isFinite(comp.wallOverSlowest.p50) ? comp.wallOverSlowest.p50 <= 1.04 : undefined,
    why: comp
      ? `wall p50 ${fmtMs(comp.wall.p50)} ms for a slowest call of ${fmtMs(comp.slowest.p50)} ms`
      : '',
  });

  checks.push(httpTarget(r));

  const m = r.memory;
  checks.push({
    target: 'Coordinator heap ≤ 2 KB per pending call',
    measured: `${fmtInt(m.bytesPerPendingCall)} B per pending call (${fmtInt(m.pendingAtMeasure)} batches in flight)`,
    met: Number.isFinite(m.bytesPerPendingCall) ? m.bytesPerPendingCall <= 2048 : undefined,
    why:
      `heapUsed after gc: ${(m.heapBaseline / 2 ** 20).toFixed(1)} MiB idle → ${(m.heapPending / 2 ** 20).toFixed(1)} MiB ` +
      'with every call pending (whatever the caller keeps of its batches included). See the analysis',
  });
  return checks;
}

/** Issue 9: the HTTP path adds at most 1 ms at the median and keeps p99 within 1.5 × the library's. */
function httpTarget(r: SuiteResult): TargetCheck {
  const row = (size: number, path: HttpPath) => r.http.rows.find((x) => x.size === size && x.path === path);
  const sizes = [...new Set(r.http.rows.map((x) => x.size))];
  const per = sizes.map((size) => {
    const http = row(size, 'http');
    const lib = row(size, 'library');
    const added = (http?.wall.p50 ?? Number.NaN) - (lib?.wall.p50 ?? Number.NaN);
    const p99x = ratio(http?.wall.p99 ?? Number.NaN, lib?.wall.p99 ?? Number.NaN);
    return { size, added, p99x, met: added <= 1 && p99x <= 1.5 };
  });
  const measured = per.every((p) => Number.isFinite(p.added) && Number.isFinite(p.p99x));
  return {
    target: 'HTTP path: ≤ 1 ms over Dispatcher.dispatch() at p50, p99 ≤ 1.5 × (batches of 1 and 10)',
    measured: measured
      ? per.map((p) => `batch ${p.size}: +${fmtMs(p.added)} ms p50, p99 ${fmtX(p.p99x)}`).join('; ')
      : '—',
    met: measured && per.length > 0 ? per.every((p) => p.met) : undefined,
    why:
      `GET /healthz on the same kept-alive socket: p50 ${fmtMs(r.http.healthz.p50)} ms, p99 ${fmtMs(r.http.healthz.p99)} ms ` +
      '(HTTP itself: a request, a response, two process wake-ups on loopback). See the analysis',
  };
}

function cpuTotal(t: ThroughputRow | undefined): number {
  return t ? t.cpuUsec.client + t.cpuUsec.workers + t.cpuUsec.redis : Number.NaN;
}

export function toolqLostTotal(r: SuiteResult): { lost: number; calls: number } {
  let lost = r.startup.toolq.lost + r.memory.lost;
  let calls = r.startup.calls + r.memory.batches;
  for (const o of r.overhead.filter((x) => x.system === 'toolq')) {
    lost += o.lost;
    calls += o.calls;
  }
  for (const t of r.throughput.filter((x) => x.system === 'toolq')) {
    lost += t.lost;
    calls += t.calls * t.rates.length;
  }
  const comp = r.competitor.find((c) => c.system === 'toolq');
  if (comp) {
    lost += comp.lost;
    calls += r.config.competitor.calls * r.config.competitor.iterations;
  }
  return { lost, calls };
}

export function renderReport(r: SuiteResult, options: { includeAnalysis?: boolean } = {}): string {
  const out: string[] = [];
  const e = r.env;
  out.push('# toolq benchmarks', '');
  out.push(
    `Produced by \`${r.command}\` (${r.config.mode} run, ${(r.durationMs / 1000).toFixed(0)} s) on ${e.date.slice(0, 10)}. ` +
      'Every number below comes from this one run, on one machine: toolq, the plain BullMQ barrier and raw BullMQ ' +
      'share the same redis-server and the same kind and number of worker processes, and take turns so that ' +
      'background load hits them alike.',
    '',
  );
  out.push(
    table(
      ['', ''],
      [
        ['date', e.date],
        ['CPU', `${e.cpuModel} × ${e.cores} cores, ${e.memoryGiB} GiB`],
        [
          'load average (1/5/15 min) at start → end',
          `${e.loadAverage.join(' / ')} → ${r.loadAverageEnd.join(' / ')}`,
        ],
        ['Node', e.node],
        ['redis-server', e.redisServer],
        ...Object.entries(e.libraries).map(([name, v]) => [name, v]),
        ['command', `\`${r.command}\``],
        [
          'worker processes',
          `toolq CLI (\`--tools diagnostics\`) and bench/plain-worker.ts, concurrency ${r.config.concurrency} each`,
        ],
      ],
    ),
    '',
  );

  out.push('## Targets (issue 5)', '');
  out.push(
    table(
      ['target', 'measured', 'verdict', 'why / profile'],
      checkTargets(r).map((c) => [c.target, c.measured, verdict(c.met), c.why]),
    ),
    '',
  );

  out.push(
    ...overheadSection(r),
    ...throughputSection(r),
    ...competitorSection(r),
    ...earlySection(r),
    ...memorySection(r),
    ...httpSection(r),
    ...renderFlow(r.flow, table),
  );

  if (options.includeAnalysis !== false && existsSync(ANALYSIS_FILE)) {
    out.push(readFileSync(ANALYSIS_FILE, 'utf8').trim(), '');
  }
  return `${out.join('\n')}\n`;
}

function overheadSection(r: SuiteResult): string[] {
  const c = r.config.overhead;
  const out = ['## 1. Barrier overhead', ''];
  out.push(
    `Overhead = wall time of a batch (from the caller's side) minus its slowest call's run time on the worker, ` +
      `for batches of no-op \`diag_echo\` calls, one batch at a time, ${r.config.latencyWorkers} worker process(es) of each kind. ` +
      `Measured batches per system: ${c.batchSizes.map((s) => `${s}: ${c.iterations[s] ?? 50}`).join(', ')} (after ${c.warmup} warm-up). ` +
      `A call not answered within ${c.lostTimeoutMs / 1000} s is lost; a batch that lost a call is not a latency sample. ` +
      'Ratios are against the plain BullMQ + QueueEvents barrier of the same batch size.',
    '',
  );
  const rows = r.overhead.map((o) => {
    const plain = r.overhead.find((p) => p.size === o.size && p.system === 'plain');
    return [
      o.size,
      SYSTEM_LABEL[o.system],
      o.overhead.n,
      ...pcts(o.overhead),
      fmtX(ratio(o.overhead.p50, plain?.overhead.p50 ?? Number.NaN)),
      fmtX(ratio(o.overhead.p99, plain?.overhead.p99 ?? Number.NaN)),
      fmtMs(o.wall.p50),
      o.system === 'inproc' ? '—' : `${o.lost} / ${fmtInt(o.calls)}`,
    ];
  });
  out.push(
    table(
      [
        'batch',
        'system',
        'batches',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        'p50 × plain',
        'p99 × plain',
        'wall p50 ms',
        'lost',
      ],
      rows,
    ),
    '',
  );
  const s = r.startup;
  out.push(
    `**Start-up burst.** ${fmtInt(s.calls)} calls in batches of ${s.batchSize}, all submitted at once the moment each client exists: ` +
      'the plain barrier right after `new Queue()` / `new QueueEvents()` (as a naive user would, without `waitUntilReady()`), ' +
      'toolq right after `await dispatcher.start()` (its documented contract). ' +
      `Lost = not answered within ${r.config.startup.lostTimeoutMs / 1000} s.`,
    '',
  );
  out.push(
    table(
      ['system', 'calls', 'lost', 'lost although a worker completed the job', 'errors', 'burst wall ms'],
      [
        [SYSTEM_LABEL.toolq, fmtInt(s.calls), s.toolq.lost, '—', s.toolq.errors, fmtMs(s.toolq.wallMs)],
        [
          SYSTEM_LABEL.plain,
          fmtInt(s.calls),
          s.plain.lost,
          s.plain.lostButCompleted,
          s.plain.errors,
          fmtMs(s.plain.wallMs),
        ],
      ],
    ),
    '',
  );
  return out;
}

function throughputSection(r: SuiteResult): string[] {
  const c = r.config.throughput;
  const out = ['## 2. Throughput', ''];
  out.push(
    `${fmtInt(c.callsPerRun)} no-op calls submitted at once in batches of ${c.batchSize}; the clock stops at the last answer ` +
      '(toolq: the last dispatch() resolved; raw BullMQ: no waiting or active job left, polled every 5 ms — nobody is told the results). ' +
      `${c.runs} measured run(s) per row after one warm-up; calls/s is the median, the range min–max. ` +
      'Latency is dispatch → answer of every toolq call while saturated. Redis CPU per call: the redis-server process ' +
      '(`INFO cpu`: commands, scripts and networking), over the measured runs. ' +
      'CPU of the other processes from /proc: client = the bench process (the Dispatcher, or the raw BullMQ producer), ' +
      'workers = all worker processes together. The machine has ' +
      `${r.env.cores} cores: at N calls/s, all processes together can spend at most ${r.env.cores} × 10⁶ / N µs per call.`,
    '',
  );
  const rows = r.throughput.map((t) => {
    const raw = r.throughput.find((x) => x.workers === t.workers && x.system === 'raw');
    const med = median(t.rates);
    return [
      t.workers,
      t.system === 'toolq' ? 'toolq Dispatcher' : 'raw BullMQ jobs',
      fmtInt(med),
      `${fmtInt(Math.min(...t.rates))}–${fmtInt(Math.max(...t.rates))}`,
      fmtX(ratio(med, median(raw?.rates ?? []))),
      ...(t.latency ? pcts(t.latency) : ['—', '—', '—']),
      fmtInt(t.redisCpuUsec),
      `${fmtInt(t.cpuUsec.client)} / ${fmtInt(t.cpuUsec.workers)}`,
      t.system === 'toolq' ? `${t.lost} / ${fmtInt(t.calls * t.rates.length)}` : `${t.errors} failed`,
    ];
  });
  out.push(
    table(
      [
        'worker procs',
        'system',
        'calls/s',
        'range',
        '× raw',
        'latency p50 ms',
        'p95 ms',
        'p99 ms',
        'Redis CPU µs/call',
        'client / workers CPU µs/call',
        'lost',
      ],
      rows,
    ),
    '',
  );
  const maxN = Math.max(...r.throughput.map((t) => t.workers));
  for (const system of ['toolq', 'raw'] as const) {
    const t = r.throughput.find((x) => x.workers === maxN && x.system === system);
    if (!t || t.redisTop.length === 0) continue;
    out.push(
      `Redis \`INFO commandstats\`, ${system === 'toolq' ? 'toolq' : 'raw BullMQ'}, ${maxN} worker procs (last run; calls and µs per tool call; ` +
        'commands run inside scripts are counted both on their own line and in `evalsha`): ' +
        t.redisTop
          .slice(0, 6)
          .map(
            (x) => `\`${x.command}\` ${(x.calls / t.calls).toFixed(2)}× ${(x.usec / t.calls).toFixed(1)} µs`,
          )
          .join(', '),
      '',
    );
  }
  return out;
}

function competitorSection(r: SuiteResult): string[] {
  const c = r.config.competitor;
  const out = ['## 3. The competitor scenario', ''];
  out.push(
    `${c.calls} \`diag_sleep\` calls of ${c.sleepMs} ms in one batch, ${c.iterations} batches per system. ` +
      "Slowest = the longest run time of a call in the batch; speed-up = the sum of the calls' measured run times " +
      '(running them one after another) / wall time.',
    '',
  );
  out.push(
    table(
      [
        'system',
        'batches',
        'wall p50 ms',
        'p95 ms',
        'p99 ms',
        'slowest p50 ms',
        'wall / slowest p50',
        'p99',
        'speed-up vs sequential p50',
        'lost',
      ],
      r.competitor.map((x) => [
        SYSTEM_LABEL[x.system],
        x.wall.n,
        ...pcts(x.wall),
        fmtMs(x.slowest.p50),
        fmtX(x.wallOverSlowest.p50),
        fmtX(x.wallOverSlowest.p99),
        fmtX(x.speedUp.p50),
        x.system === 'inproc' ? '—' : x.lost,
      ]),
    ),
    '',
  );
  return out;
}

function earlySection(r: SuiteResult): string[] {
  const out = ['## 4. Streaming early dispatch', ''];
  const early = r.earlyDispatch;
  if (!Array.isArray(early)) {
    out.push(`**Not done:** ${early.notDone}`, '');
    return out;
  }
  out.push(
    'runAgent against the scripted Messages API (real SDK, SSE): one assistant turn streams its `tool_use` blocks with a pause ' +
      'before each (as a model generating them), then a final turn. Early dispatch on: each call is dispatched at its ' +
      "`content_block_stop`; off: all at `message_stop`. Times from the run's start: first tool dispatched, message end " +
      `(\`message_stop\`), and the turn's answer (last tool result in). ${r.config.earlyDispatch.iterations} run(s) per row; ratio = on / off.`,
    '',
  );
  const rows = early.map((x) => {
    const off = early.find((y) => y.scenario.name === x.scenario.name && !y.early);
    return [
      x.scenario.name,
      x.early ? 'on' : 'off',
      x.turnAnswer.n,
      fmtMs(x.firstDispatch.p50),
      fmtMs(x.messageEnd.p50),
      ...pcts(x.turnAnswer),
      fmtX(ratio(x.turnAnswer.p50, off?.turnAnswer.p50 ?? Number.NaN)),
      x.errors,
    ];
  });
  out.push(
    table(
      [
        'scenario',
        'early dispatch',
        'runs',
        'first dispatch p50 ms',
        'message end p50 ms',
        'answer p50 ms',
        'p95 ms',
        'p99 ms',
        'answer × off',
        'errors',
      ],
      rows,
    ),
    '',
  );
  return out;
}

function memorySection(r: SuiteResult): string[] {
  const m = r.memory;
  const out = ['## 5. Memory and scale', ''];
  out.push(
    `${fmtInt(m.batches)} single-call batches (\`diag_sleep\` ${m.sleepMs} ms) dispatched at once by a coordinator in its own ` +
      `process (\`node --expose-gc\`), served by ${m.workers} worker process(es) with concurrency ${fmtInt(m.concurrencyPerWorker)} ` +
      'each so every call can run at once. Heap = `heapUsed` after `global.gc()`, once every job is in the queue, minus the ' +
      'same before dispatching; latency = dispatch → answer per batch; ratio = per-call heap / 2 KB target.',
    '',
  );
  out.push(
    table(
      [
        'batches in flight',
        'heap idle MiB',
        'heap pending MiB',
        'bytes / pending call',
        '× target',
        'enqueue all ms',
        'answer all ms',
        'latency p50 ms',
        'p95 ms',
        'p99 ms',
        'lost',
      ],
      [
        [
          fmtInt(m.pendingAtMeasure),
          (m.heapBaseline / 2 ** 20).toFixed(1),
          (m.heapPending / 2 ** 20).toFixed(1),
          fmtInt(m.bytesPerPendingCall),
          fmtX(m.bytesPerPendingCall / 2048),
          fmtInt(m.enqueueMs),
          fmtInt(m.totalMs),
          ...pcts(m.latency),
          `${m.lost} / ${fmtInt(m.batches)}`,
        ],
      ],
    ),
    '',
  );
  return out;
}

function httpSection(r: SuiteResult): string[] {
  const c = r.config.http;
  const out = ['## 6. HTTP front door vs the library', ''];
  out.push(
    'The same batches of no-op `diag_echo` calls (`"type": "tool_use"` blocks), on the same redis-server and worker ' +
      `processes, taking turns (blocks of ${c.block}, who goes first rotating): through \`POST /v1/tool-batches\` of a real ` +
      'coordinator process (the CLI) over one kept-alive `node:http` connection, through `@toolq/client` (global `fetch`, ' +
      'undici) to the same process, and through `Dispatcher.dispatch()` in the bench process. ' +
      `Measured batches per path: ${c.batchSizes.map((s) => `${s}: ${c.iterations[s] ?? 100}`).join(', ')} ` +
      `(after ${c.warmup} warm-up). Wall = from the caller's side (request sent → JSON answer parsed); dispatcher wall = ` +
      "the Dispatcher's own `stats.wall_ms` (whole milliseconds), inside the coordinator process for HTTP. " +
      'Added = p50 − library p50 of the same batch size. The target is checked on the `node:http` row.',
    '',
  );
  const rows = r.http.rows.map((x) => {
    const lib = r.http.rows.find((y) => y.size === x.size && y.path === 'library');
    return [
      x.size,
      HTTP_PATH_LABEL[x.path],
      x.wall.n,
      ...pcts(x.wall),
      x.path === 'library' ? '—' : `+${fmtMs(x.wall.p50 - (lib?.wall.p50 ?? Number.NaN))}`,
      x.path === 'library' ? '—' : fmtX(ratio(x.wall.p99, lib?.wall.p99 ?? Number.NaN)),
      `${fmtMs(x.dispatcherWall.p50)} / ${fmtMs(x.dispatcherWall.p99)}`,
      x.errors,
    ];
  });
  out.push(
    table(
      [
        'batch',
        'path',
        'batches',
        'wall p50 ms',
        'p95 ms',
        'p99 ms',
        'added p50 ms',
        'p99 × library',
        'dispatcher wall p50 / p99 ms',
        'errors',
      ],
      rows,
    ),
    '',
  );
  out.push(
    `\`GET /healthz\` on the same connection after each measured HTTP batch: p50 ${fmtMs(r.http.healthz.p50)} ms, ` +
      `p99 ${fmtMs(r.http.healthz.p99)} ms (${r.http.healthz.n} requests).`,
    '',
  );
  return out;
}
