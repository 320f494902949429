/**
 * `pnpm bench:topology [--quick] [--out file.md]`: the same toolq workload on one standalone
 * Redis and on a 3-master Redis Cluster (1 replica each) with the two pools on different masters
 * and the coordinator on the third: calls/s, p99 batch time, and what each call cost Redis
 * (commands and µs inside commands from INFO commandstats, process CPU from INFO cpu, summed over
 * every redis-server of the topology, replicas included). Same machine, same worker processes.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Dispatcher } from '@toolq/coordinator';
import { createLogger, type RedisConnectionConfig } from '@toolq/shared';
import { startRedisCluster } from '../test-support/redis-cluster.ts';
import { adminCommand, infoFields } from '../test-support/redis-processes.ts';
import { startRedisServer } from '../test-support/redis-server.ts';
import { startWorkerProcess, type WorkerProcess } from '../test-support/worker-process.ts';
import { percentile } from './stats.ts';

const TEST_TOOLS = fileURLToPath(new URL('../test-support/test-tools.ts', import.meta.url));

interface Mode {
  calls: number;
  runs: number;
  batchSize: number;
  inFlight: number;
  workersPerPool: number;
}
const FULL: Mode = { calls: 10_000, runs: 3, batchSize: 10, inFlight: 64, workersPerPool: 2 };
const QUICK: Mode = { calls: 1_000, runs: 1, batchSize: 10, inFlight: 32, workersPerPool: 1 };

interface Node {
  port: number;
  password?: string;
  /** What lives on it: `pool A`, `pool B`, `coordinator`, `replica`, or all of them. */
  holds: string;
}

interface RunResult {
  callsPerSec: number;
  batchMs: number[];
  errors: number;
  /**
   * Masters only (a replica re-executes every write it receives). Commands a script runs are
   * counted twice by commandstats, on their own line and inside `evalsha`, so they are listed,
   * not summed.
   */
  commands: Map<string, { calls: number; usec: number }>;
  /** Every redis-server process (masters and replicas): what the topology costs in CPU. */
  cpuUsecPerCall: number;
  masterCpuUsecPerCall: number;
  /** Share of the commandstats µs on the busiest node: where one shard saturates first. */
  busiestShare: number;
  /** Redis CPU µs per call of the workload, by what the node holds. */
  cpuByRole: Map<string, number>;
}

interface Row {
  topology: string;
  runs: RunResult[];
}

const batch = (size: number, n: number) =>
  Array.from({ length: size }, (_, i) =>
    i % 2 === 0
      ? { id: `e${i}`, name: 'diag_echo', input: { value: `${n}:${i}` } }
      : { id: `c${i}`, name: 'test_counted', input: { ms: 0 } },
  );

async function cpuSeconds(node: Node): Promise<number> {
  const info = infoFields(await adminCommand(node.port, node.password, ['info', 'cpu']));
  return Number(info.get('used_cpu_user')) + Number(info.get('used_cpu_sys'));
}

async function commandStats(node: Node): Promise<Map<string, { calls: number; usec: number }>> {
  const text = String(await adminCommand(node.port, node.password, ['info', 'commandstats']));
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    const name = m[1] ?? '';
    if (name === 'info' || name.startsWith('config')) continue; // this measurement's own
    stats.set(name, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return stats;
}

async function measure(dispatcher: Dispatcher, nodes: readonly Node[], mode: Mode): Promise<RunResult> {
  const batches = Math.ceil(mode.calls / mode.batchSize);
  await Promise.all(nodes.map((n) => adminCommand(n.port, n.password, ['config', 'resetstat'])));
  const isMaster = await Promise.all(
    nodes.map(
      async (n) =>
        infoFields(await adminCommand(n.port, n.password, ['info', 'replication'])).get('role') === 'master',
    ),
  );
  const cpuBefore = await Promise.all(nodes.map(cpuSeconds));
  const batchMs: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  // Closed loop: `inFlight` batches waiting at any time, like that many agents in their tool turn.
  await Promise.all(
    Array.from({ length: mode.inFlight }, async () => {
      while (next < batches) {
        const n = next++;
        const started = performance.now();
        const result = await dispatcher.dispatch(batch(mode.batchSize, n), { timeoutMs: 30_000 });
        batchMs.push(performance.now() - started);
        errors += result.toolResults.filter((r) => r.is_error).length;
      }
    }),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  const cpuAfter = await Promise.all(nodes.map(cpuSeconds));
  const stats = (await Promise.all(nodes.map(commandStats))).filter((_, i) => isMaster[i]);
  const calls = batches * mode.batchSize;
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const node of stats)
    for (const [name, { calls: n, usec }] of node) {
      const sum = commands.get(name) ?? { calls: 0, usec: 0 };
      commands.set(name, { calls: sum.calls + n / calls, usec: sum.usec + usec / calls });
    }
  const cpuDelta = cpuAfter.map((after, i) => after - (cpuBefore[i] ?? 0));
  const masterCpu = cpuDelta.filter((_, i) => isMaster[i]);
  return {
    callsPerSec: calls / elapsedS,
    batchMs,
    errors,
    commands,
    cpuUsecPerCall: (cpuDelta.reduce((s, x) => s + x, 0) * 1e6) / calls,
    masterCpuUsecPerCall: (masterCpu.reduce((s, x) => s + x, 0) * 1e6) / calls,
    busiestShare:
      Math.max(...masterCpu) /
      Math.max(
        masterCpu.reduce((s, x) => s + x, 0),
        1e-9,
      ),
    cpuByRole: new Map(nodes.map((n, i) => [n.holds, ((cpuDelta[i] ?? 0) * 1e6) / calls])),
  };
}

async function withTopology(
  name: string,
  mode: Mode,
  start: () => Promise<{
    config: RedisConnectionConfig;
    env: Record<string, string>;
    nodes: Node[];
    pools: [string, string];
    coordinatorId: string;
    stop(): Promise<void>;
  }>,
): Promise<Row> {
  const topology = await start();
  const workers: WorkerProcess[] = [];
  const logger = createLogger({ name: 'bench', level: 'warn' });
  const dispatcher = new Dispatcher({
    redis: topology.config,
    coordinatorId: topology.coordinatorId,
    logger,
  });
  try {
    const redisUrl = 'redis://127.0.0.1:1'; // unused when env names a cluster; overridden below otherwise
    for (let i = 0; i < mode.workersPerPool; i++) {
      const [a, b] = topology.pools;
      workers.push(
        ...(await Promise.all([
          startWorkerProcess({ redisUrl, pool: a, tools: 'diagnostics', concurrency: 64, env: topology.env }),
          startWorkerProcess({ redisUrl, pool: b, tools: TEST_TOOLS, concurrency: 64, env: topology.env }),
        ])),
      );
    }
    await dispatcher.start();
    await measure(dispatcher, topology.nodes, { ...mode, calls: Math.min(mode.calls, 500), runs: 1 }); // warm-up
    const runs: RunResult[] = [];
    for (let r = 0; r < mode.runs; r++) runs.push(await measure(dispatcher, topology.nodes, mode));
    process.stderr.write(`${name}: ${runs.map((r) => Math.round(r.callsPerSec)).join(', ')} calls/s\n`);
    return { topology: name, runs };
  } finally {
    await dispatcher.close();
    await Promise.all(workers.map((w) => w.stop()));
    await topology.stop();
  }
}

const standalone = async () => {
  const server = await startRedisServer();
  return {
    config: { mode: 'standalone', url: server.url } as RedisConnectionConfig,
    env: { REDIS_URL: server.url },
    nodes: [{ port: server.port, holds: 'pool A + pool B + coordinator' }],
    pools: ['bench-a', 'bench-b'] as [string, string],
    coordinatorId: 'bench-coordinator',
    stop: () => server.stop(),
  };
};

const cluster = async () => {
  const c = await startRedisCluster();
  const masterOf = async (tag: string) => (await c.masterOf(`toolq:{${tag}}:x`)).port;
  // Pool A, pool B and the coordinator each on their own master.
  const taken = new Set<number>();
  const pick = async (make: (i: number) => string) => {
    for (let i = 0; i < 500; i++) {
      const port = await masterOf(make(i));
      if (!taken.has(port)) {
        taken.add(port);
        return make(i);
      }
    }
    throw new Error('no free master for a tag');
  };
  const pools: [string, string] = [await pick((i) => `bench-a${i}`), await pick((i) => `bench-b${i}`)];
  const coordinatorId = (await pick((i) => `c.bench${i}`)).slice(2);
  const holds = new Map([
    [await masterOf(pools[0]), 'pool A'],
    [await masterOf(pools[1]), 'pool B'],
    [await masterOf(`c.${coordinatorId}`), 'coordinator'],
  ]);
  let replicas = 0;
  return {
    config: c.config,
    env: c.env,
    nodes: c.nodes.map((n) => ({
      port: n.port,
      password: c.password,
      holds: holds.get(n.port) ?? `replica ${++replicas}`,
    })),
    pools,
    coordinatorId,
    stop: () => c.stop(),
  };
};

function table(rows: Row[], mode: Mode): string {
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  const lines = [
    "| topology | calls/s (runs) | p50 / p99 batch ms | Redis CPU µs / call, masters (INFO cpu) | … all redis-servers, replicas included | busiest master's share of master CPU | `evalsha` calls and µs / call (commandstats) | is_error |",
    '|---|---|---|---|---|---|---|---|',
  ];
  const breakdown: string[] = [];
  for (const { topology, runs } of rows) {
    const all = runs.flatMap((r) => r.batchMs).sort((a, b) => a - b);
    const merged = new Map<string, { calls: number; usec: number }>();
    for (const r of runs)
      for (const [name, v] of r.commands) {
        const sum = merged.get(name) ?? { calls: 0, usec: 0 };
        merged.set(name, { calls: sum.calls + v.calls / runs.length, usec: sum.usec + v.usec / runs.length });
      }
    const evalsha = merged.get('evalsha') ?? { calls: 0, usec: 0 };
    lines.push(
      `| ${topology} | ${Math.round(avg(runs.map((r) => r.callsPerSec)))} (${runs.map((r) => Math.round(r.callsPerSec)).join(', ')}) ` +
        `| ${percentile(all, 50).toFixed(1)} / ${percentile(all, 99).toFixed(1)} ` +
        `| ${avg(runs.map((r) => r.masterCpuUsecPerCall)).toFixed(0)} | ${avg(runs.map((r) => r.cpuUsecPerCall)).toFixed(0)} ` +
        `| ${(avg(runs.map((r) => r.busiestShare)) * 100).toFixed(0)} % ` +
        `| ${evalsha.calls.toFixed(2)} × ${(evalsha.usec / Math.max(evalsha.calls, 1e-9)).toFixed(1)} µs = ${evalsha.usec.toFixed(1)} µs ` +
        `| ${runs.reduce((s, r) => s + r.errors, 0)} |`,
    );
    const roles = new Map<string, number>();
    for (const r of runs)
      for (const [role, usec] of r.cpuByRole) roles.set(role, (roles.get(role) ?? 0) + usec / runs.length);
    breakdown.push(
      `- ${topology}, Redis CPU µs per call by what each node holds: ${[...roles].map(([role, usec]) => `${role} ${usec.toFixed(0)}`).join(', ')}`,
    );
    const top = [...merged]
      .sort((a, b) => b[1].usec - a[1].usec)
      .slice(0, 8)
      .map(([name, v]) => `\`${name}\` ${v.calls.toFixed(2)}× ${v.usec.toFixed(1)} µs`);
    breakdown.push(
      `- ${topology}, masters' \`INFO commandstats\` per tool call (commands run inside scripts are counted on their own line and inside \`evalsha\`): ${top.join(', ')}`,
    );
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
  return [
    `${mode.runs} run(s) of ${mode.calls} calls per topology after a warm-up, batches of ${mode.batchSize} (half diag_echo on pool A, ` +
      `half test_counted on pool B), ${mode.inFlight} batches in flight, ${mode.workersPerPool} worker process(es) ` +
      `per pool (concurrency 64), one in-process coordinator. ${new Date().toISOString()}, ${machine}.`,
    '',
    ...lines,
    '',
    ...breakdown,
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const mode = argv.includes('--quick') ? QUICK : FULL;
  const outAt = argv.indexOf('--out');
  const rows = [
    await withTopology('standalone (1 redis-server)', mode, standalone),
    await withTopology('cluster (3 masters + 3 replicas)', mode, cluster),
  ];
  const text = table(rows, mode);
  process.stdout.write(`${text}\n`);
  const out = outAt >= 0 ? argv[outAt + 1] : undefined;
  if (out) writeFileSync(out, text);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench:topology: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
