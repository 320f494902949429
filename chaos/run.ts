/**
 * `pnpm chaos`: a fleet of real processes under load and seeded faults, then a check of the whole
 * history against what toolq promises (chaos/checker.ts). Exits 1 on any broken promise.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { buildPackages } from '../test-support/built-packages.ts';
import { checkHistory, PROMISES } from './checker.ts';
import { describeFault, planFaults, prng } from './faults.ts';
import { Fleet } from './fleet.ts';
import { appendEvent, DRIVER_LOG, type HistoryEvent, readHistory } from './history.ts';
import { watchStalls } from './stalls.mjs';
import { CHAOS_TOOL } from './tools.mjs';

const HELP = `pnpm chaos [options]

Starts Redis, workers and coordinators as processes, drives tool batches and durable runs
through the HTTP API, injects seeded faults, then checks the whole history for broken promises.

  --seed N           fault schedule and load seed (default 1)
  --duration D       how long the load runs: 60s, 5m, 90000 (ms) (default 60s)
  --cluster          a 6-node Redis Cluster instead of one redis-server
  --persistence P    standalone Redis: aof (default) or none
  --workers N        worker processes (default 3)
  --grace MS         how late past its deadline a batch may be answered (default 2000)
  --out DIR          where the history goes (default .tmp/chaos/seed-<seed>)
  --help             this text

Exit code 0: no broken promise; 1: at least one (listed); 2: the run itself failed.`;

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) {
    console.error(`--duration: ${JSON.stringify(text)} is not like 60s, 5m or 90000`);
    process.exit(2);
  }
  const n = Number(m[1]);
  return Math.round(m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1_000 : n);
}

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    duration: { type: 'string', default: '60s' },
    cluster: { type: 'boolean', default: false },
    persistence: { type: 'string', default: 'aof' },
    workers: { type: 'string', default: '3' },
    grace: { type: 'string', default: '2000' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const seed = Number(values.seed);
const durationMs = parseDuration(values.duration);
const persistence = values.persistence === 'none' ? 'none' : 'aof';
const workers = Math.max(1, Number(values.workers));
const graceMs = Number(values.grace);
if (
  !Number.isInteger(seed) ||
  !Number.isInteger(workers) ||
  !Number.isFinite(graceMs) ||
  durationMs < 15_000
) {
  console.error('--seed and --workers must be integers, --grace a number of ms, --duration at least 15s');
  process.exit(2);
}
const COORDINATORS = 2;
const BATCH_TIMEOUT_MS = 4_000;
const RUN_CALL_TIMEOUT_MS = 8_000;
/** How long a caller keeps trying to get a batch's answer after its POST failed. */
const COLLECT_FOR_MS = 30_000;
const RUN_WAIT_MS = 120_000;

const dir = resolve(values.out ?? join('.tmp', 'chaos', `seed-${seed}`));
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const driverLog = join(dir, DRIVER_LOG);
const record = (event: HistoryEvent) => appendEvent(driverLog, event);
// The driver times every answer: its own stalls are part of the history too.
const stopWatchingStalls = watchStalls(driverLog, 'driver');

const plan = planFaults({ seed, durationMs, cluster: values.cluster, workers, coordinators: COORDINATORS });
const load = prng(seed ^ 0x5eed);
const between = (lo: number, hi: number) => Math.round(lo + load() * (hi - lo));

console.log(
  `chaos: seed ${seed}, ${durationMs / 1000}s of load, ${values.cluster ? 'Redis Cluster' : `standalone Redis (${persistence})`}, ` +
    `${workers} workers, ${COORDINATORS} coordinators, grace ${graceMs} ms; history in ${dir}`,
);
console.log(`planned faults (${plan.length}):\n${plan.map((f) => `  ${describeFault(f)}`).join('\n')}`);

/** The run tagged `r<n>`: two calls, then one, then the answer; each call's tool_use id is its key. */
const runCallMs = (tag: string, i: number) => 200 + ((tag.length * 7919 + i * 104_729) % 1_300);
/**
 * One scripted model per coordinator slot (the same script), so each ask names the coordinator
 * that sent it (`asker`, its URL, known once the fleet is up): the checker tells the run's owner
 * from a stale one.
 */
const askers: string[] = [];
const models = await Promise.all(
  Array.from({ length: COORDINATORS }, (_, slot) =>
    startScriptedModel((ctx) => {
      const first = ctx.messages[0]?.content;
      const tag = typeof first === 'string' ? first.replace(/^chaos:/, '') : '?';
      const asker = askers[slot];
      record({ type: 'model_ask', tag, turn: ctx.turn, ...(asker ? { asker } : {}), at: Date.now() });
      const call = (turn: number, i: number) => ({
        id: `${tag}_t${turn}_${i}`,
        name: CHAOS_TOOL,
        input: { key: `${tag}_t${turn}_${i}`, ms: runCallMs(tag, turn * 10 + i) },
      });
      return toolTurnsScript([{ calls: [call(1, 0), call(1, 1)] }, { calls: [call(2, 0)] }])(ctx);
    }),
  ),
);

let fleet: Fleet | undefined;
let exitCode = 2;
try {
  // The fleet runs the built CLIs: build (incremental, a no-op when dist/ is fresh) from a clean clone too.
  await buildPackages();
  fleet = await Fleet.start({
    dir,
    cluster: values.cluster,
    persistence,
    workers,
    coordinators: COORDINATORS,
    modelUrls: models.map((m) => m.url),
    takeoverMs: 3_000,
  });
  console.log(`fleet: ${fleet.describe()}`);
  const urls = fleet.coordinatorUrls;
  askers.push(...urls);
  // A coordinator's id in a run's events, as its URL (the name its asks and stalls go by).
  const ownerUrl = (id: string) => urls[Number(id.replace(/^chaos-c/, ''))] ?? id;
  const started = Date.now();
  const endAt = started + durationMs;
  const pick = () => urls[Math.floor(load() * urls.length)] ?? '';

  const faultLoop = async () => {
    for (const fault of plan) {
      const wait = started + fault.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      try {
        const event = await (fleet as Fleet).inject(fault);
        record(event);
        console.log(
          `  fault ${describeFault(fault)} (held ${event.until - event.at} ms${event.pid ? `, pid ${event.pid}` : ''})`,
        );
      } catch (err) {
        console.error(`  fault ${describeFault(fault)} could not be injected: ${(err as Error).message}`);
        throw err;
      }
    }
  };

  const inflight = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  };
  let batchCount = 0;
  let runCount = 0;
  let batchesInFlight = 0;
  let runsInFlight = 0;
  const loadLoop = async () => {
    while (Date.now() < endAt) {
      if (batchesInFlight < 3) {
        const n = between(1, 4);
        const batch = `b${batchCount++}`;
        const calls = Array.from({ length: n }, (_, i) => ({ id: `${batch}_${i}`, ms: between(20, 900) }));
        batchesInFlight++;
        track(sendBatch(batch, calls, pick()).finally(() => batchesInFlight--));
      }
      if (runsInFlight < 2 && load() < 0.25) {
        runsInFlight++;
        track(startRun(`r${runCount++}`, pick()).finally(() => runsInFlight--));
      }
      await sleep(200);
    }
  };

  async function sendBatch(batch: string, calls: { id: string; ms: number }[], url: string): Promise<void> {
    const body = {
      batch_id: batch,
      tool_uses: calls.map((c) => ({
        type: 'tool_use',
        id: c.id,
        name: CHAOS_TOOL,
        input: { key: c.id, ms: c.ms },
      })),
      timeout_ms: BATCH_TIMEOUT_MS,
      failure_policy: 'continue',
    };
    const sentAt = Date.now();
    record({
      type: 'batch_sent',
      batch,
      coordinator: url,
      at: sentAt,
      timeoutMs: BATCH_TIMEOUT_MS,
      calls: calls.map((c) => ({ id: c.id, tool: CHAOS_TOOL })),
    });
    const post = (to: string) =>
      fetch(`${to}/v1/tool-batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(BATCH_TIMEOUT_MS + COLLECT_FOR_MS),
      });
    const answered = async (res: Response, via: 'post' | 'collect', to: string) => {
      const json = (await res.json()) as {
        tool_results: { tool_use_id: string; content: unknown; is_error?: boolean }[];
      };
      record({
        type: 'batch_answer',
        batch,
        via,
        coordinator: to,
        at: Date.now(),
        results: json.tool_results.map((r) => ({
          id: r.tool_use_id,
          isError: r.is_error === true,
          content: typeof r.content === 'string' ? r.content : JSON.stringify(r.content),
        })),
      });
    };
    let lastError = '';
    try {
      const res = await post(url);
      if (res.status === 200) return await answered(res, 'post', url);
      lastError = `POST ${res.status} ${(await res.text()).slice(0, 200)}`;
    } catch (err) {
      lastError = `POST: ${(err as Error).message}`;
    }
    // The caller's part after a failed POST: collect the batch by its id from any coordinator, or
    // send it again if no coordinator has it (a 409 then means another attempt has it: collect).
    const giveUpAt = Date.now() + COLLECT_FOR_MS;
    for (let i = 0; Date.now() < giveUpAt; i++) {
      const to = urls[(urls.indexOf(url) + 1 + i) % urls.length] ?? url;
      try {
        const got = await fetch(`${to}/v1/tool-batches/${batch}`, {
          signal: AbortSignal.timeout(BATCH_TIMEOUT_MS + 10_000),
        });
        if (got.status === 200) return await answered(got, 'collect', to);
        lastError = `GET ${got.status}`;
        if (got.status === 404) {
          const again = await post(to);
          if (again.status === 200) return await answered(again, 'collect', to);
          lastError = `POST again ${again.status}`;
        }
      } catch (err) {
        lastError = `${(err as Error).message}`;
      }
      await sleep(300);
    }
    record({ type: 'batch_lost', batch, at: Date.now(), reason: lastError });
  }

  async function startRun(tag: string, url: string): Promise<void> {
    const giveUpAt = Date.now() + COLLECT_FOR_MS;
    let runId: string | undefined;
    let lastError = '';
    for (let i = 0; !runId && Date.now() < giveUpAt; i++) {
      const to = urls[(urls.indexOf(url) + i) % urls.length] ?? url;
      try {
        const res = await fetch(`${to}/v1/runs`, {
          method: 'POST',
          // The same key from a retry returns the same run: a lost 202 never starts a second one.
          headers: { 'content-type': 'application/json', 'idempotency-key': `chaos-${tag}` },
          body: JSON.stringify({
            prompt: `chaos:${tag}`,
            tools: [CHAOS_TOOL],
            timeout_ms: RUN_CALL_TIMEOUT_MS,
          }),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.status === 202 || res.status === 200) {
          runId = ((await res.json()) as { run_id: string }).run_id;
          record({ type: 'run_started', run: runId, tag, coordinator: to, at: Date.now() });
        } else lastError = `POST ${res.status} ${(await res.text()).slice(0, 200)}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (!runId) await sleep(500);
    }
    if (!runId) {
      console.error(`  run ${tag} could not be started: ${lastError}`);
      return;
    }
    const waitUntil = Date.now() + RUN_WAIT_MS;
    let notFound = 0;
    for (let i = 0; Date.now() < waitUntil; i++) {
      await sleep(500);
      const to = urls[i % urls.length] ?? url;
      try {
        const res = await fetch(`${to}/v1/runs/${runId}`, { signal: AbortSignal.timeout(5_000) });
        if (res.status !== 200) {
          lastError = `GET ${res.status}`;
          // Redis answers only once it has loaded its data: a run unknown to every coordinator, again and again, is gone.
          notFound = res.status === 404 ? notFound + 1 : 0;
          if (notFound >= 6) break;
          continue;
        }
        notFound = 0;
        const run = (await res.json()) as { status: string; takeovers: number };
        if (run.status === 'running') continue;
        const events = await runEvents(to, runId, ownerUrl);
        record({
          type: 'run_finished',
          run: runId,
          tag,
          status: run.status,
          takeovers: run.takeovers,
          at: Date.now(),
          events,
        });
        return;
      } catch (err) {
        lastError = (err as Error).message;
      }
    }
    record({ type: 'run_lost', run: runId, tag, at: Date.now(), reason: lastError });
  }

  await Promise.all([faultLoop(), loadLoop()]);
  // The load has stopped: let every batch and run in flight end (each has its own bound).
  while (inflight.size > 0) await Promise.all([...inflight]);
  const ranMs = Date.now() - started;
  await fleet.stop();
  fleet = undefined;
  stopWatchingStalls();

  const { events, unreadable } = readHistory(dir);
  const report = checkHistory(events, { graceMs, persistence });
  writeFileSync(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(
    `\nran ${(ranMs / 1000).toFixed(1)}s; ${events.length} history lines${unreadable ? ` (${unreadable} unreadable)` : ''}`,
  );
  console.log('figures:');
  for (const [name, n] of Object.entries(report.figures)) console.log(`  ${name}: ${n}`);
  const stalls = events.flatMap((e) => (e.type === 'stall' ? [e] : []));
  const worst = stalls.sort((a, b) => b.ms - b.cpuMs - (a.ms - a.cpuMs)).slice(0, 3);
  if (worst.length > 0)
    console.log(
      `event-loop stalls the processes measured (off the CPU): ${worst.map((w) => `${w.ms - w.cpuMs} ms of ${w.ms} ms on ${w.proc} ending +${w.at - started} ms`).join('; ')}`,
    );
  console.log('promises checked:');
  for (const [name, text] of Object.entries(PROMISES)) {
    const vacuous = report.vacuous.find((v) => v.promise === name);
    const broken = report.violations.filter((v) => v.promise === name).length;
    const excused = report.excused.filter((v) => v.promise === name).length;
    const state = vacuous ? `vacuous (${vacuous.why})` : broken ? `BROKEN ${broken}x` : 'kept';
    console.log(`  ${name}: ${state}${excused ? `, ${excused} excused by a fault` : ''} — ${text}`);
  }
  for (const f of report.excused) console.log(`  excused ${f.promise} ${f.subject}: ${f.detail}`);
  for (const f of report.violations) console.log(`  VIOLATION ${f.promise} ${f.subject}: ${f.detail}`);
  console.log(
    report.violations.length === 0
      ? 'chaos: no broken promise'
      : `chaos: ${report.violations.length} broken promise(s)`,
  );
  exitCode = report.violations.length === 0 ? 0 : 1;
} catch (err) {
  console.error(`chaos: the run failed: ${(err as Error).stack ?? err}`);
} finally {
  await fleet?.stop().catch(() => undefined);
  await Promise.all(models.map((m) => m.close()));
}

async function runEvents(
  url: string,
  runId: string,
  ownerUrl: (id: string) => string,
): Promise<Extract<HistoryEvent, { type: 'run_finished' }>['events']> {
  const res = await fetch(`${url}/v1/runs/${runId}/events`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  const out: Extract<HistoryEvent, { type: 'run_finished' }>['events'] = [];
  for (const block of text.split('\n\n')) {
    const data = block.split('\n').find((l) => l.startsWith('data: '));
    if (!data) continue;
    const e = JSON.parse(data.slice(6)) as {
      type: string;
      at: number;
      iteration?: number;
      tool_use_id?: string;
      is_error?: boolean;
      coordinator?: string;
    };
    out.push({
      type: e.type,
      at: e.at,
      ...(e.iteration === undefined ? {} : { iteration: e.iteration }),
      ...(e.tool_use_id === undefined ? {} : { toolUseId: e.tool_use_id }),
      ...(e.is_error === undefined ? {} : { isError: e.is_error }),
      ...(e.coordinator === undefined ? {} : { coordinator: ownerUrl(e.coordinator) }),
    });
  }
  return out;
}
process.exit(exitCode);
