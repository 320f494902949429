/**
 * Every key one Lua script or one multi-key command touches shares a Redis Cluster hash slot.
 * toolq runs a workload that reaches every path (single calls, chunks over two pools, failures,
 * retries, a deadline that removes a waiting job and cancels a running one, an abort, collect(),
 * start and shutdown) against a standalone Redis, which rejects nothing, while MONITOR records
 * every command, including the ones run inside scripts. Then Redis itself says which keys each
 * command touches (COMMAND GETKEYS) and in which slot each key lies (CLUSTER KEYSLOT on a
 * cluster-enabled node), so a script or transaction that strays across slots fails this test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test-support/free-port.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisProcess, redisProcess } from '../../../test-support/redis-processes.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import testTools from '../../../test-support/test-tools.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { Dispatcher } from '../src/index.ts';

interface Logged {
  source: string;
  args: string[];
}

/** What one atomic unit touched: a command, a script with the commands it ran, or a MULTI/EXEC. */
interface Unit {
  what: string;
  commands: string[][];
}

let server: RedisServer;
let slotNode: RedisProcess;
let slotDir: string;
const logged: Logged[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  slotDir = mkdtempSync(join(tmpdir(), 'toolq-slots-'));
  const port = await freePort();
  // One cluster-enabled node needs no cluster around it to answer CLUSTER KEYSLOT.
  slotNode = redisProcess(port, [
    ...['--port', String(port), '--bind', '127.0.0.1', '--dir', slotDir, '--save', ''],
    ...['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'],
  ]);
  await slotNode.start();
  await runWorkload();
});

afterAll(async () => {
  await slotNode?.kill();
  if (slotDir) rmSync(slotDir, { recursive: true, force: true });
  await server?.stop();
});

async function runWorkload(): Promise<void> {
  const monitorClient = new Redis(server.url);
  const monitor = await monitorClient.monitor();
  monitor.on('monitor', (_time: string, args: string[], source: string) => logged.push({ source, args }));
  const logger = testLogger();
  const workers = await Promise.all([
    startWorker({ tools: diagnostics, redisUrl: server.url, pool: 'alpha', concurrency: 1, logger }),
    startWorker({ tools: testTools, redisUrl: server.url, pool: 'beta', concurrency: 8, logger }),
  ]);
  const coordinators = ['coord-a', 'coord-b'].map(
    (coordinatorId) => new Dispatcher({ redisUrl: server.url, coordinatorId, logger, sweepIntervalMs: 200 }),
  );
  const [a, b] = coordinators as [Dispatcher, Dispatcher];
  await Promise.all(coordinators.map((d) => d.start()));
  const echo = (id: string, value: unknown) => ({ id, name: 'diag_echo', input: { value } });
  await a.dispatch([echo('one', 1)]);
  await a.dispatch([echo('x', 1), echo('y', 2), { id: 'f', name: 'diag_fail', input: { message: 'no' } }]);
  await b.dispatch([
    echo('p', 1),
    { id: 'q', name: 'test_counted', input: { ms: 5 } },
    { id: 'r', name: 'test_counted', input: { ms: 5 } },
    { id: 'u', name: 'no_such_tool', input: {} },
  ]);
  await b.dispatch([{ id: 'retry', name: 'test_flaky', input: { succeed_on: 2 } }], {
    failurePolicy: 'retry',
  });
  // alpha runs one job at a time: the second batch's job waits and is removed at its deadline,
  // the first one's is cancelled while it runs.
  const slow = a.dispatch([{ id: 's1', name: 'diag_sleep', input: { ms: 1_500 } }], { timeoutMs: 400 });
  const queued = a.dispatch([{ id: 's2', name: 'diag_sleep', input: { ms: 1_500 } }], { timeoutMs: 400 });
  const aborted = new AbortController();
  const cancelled = b.dispatch([{ id: 'h', name: 'test_hang', input: {} }], { signal: aborted.signal });
  setTimeout(() => aborted.abort(new Error('caller gave up')), 200);
  await Promise.all([slow, queued, cancelled]);
  await a.dispatch([echo('own', 'id')], { batchId: 'own-batch-1' });
  expect((await a.collect('own-batch-1'))?.toolResults[0]?.content).toBe('id');
  // The cancelled sleeps end (no job left active) and a dead-worker sweep runs after the batches,
  // so their commands are in the log too (a fixed 1.7 s was short on a loaded machine).
  const probe = new Redis(server.url);
  const mark = logged.length;
  await waitFor('the cancelled sleeps to end and a dead-worker sweep to run', async () => {
    const active = new Set(logged.flatMap((l) => l.args.filter((a) => /^toolq:\{[^}]+\}:active$/.test(a))));
    const busy = await Promise.all([...active].map((key) => probe.llen(key)));
    const swept = logged.slice(mark).some((l) => l.args.some((a) => a.includes('dead-worker')));
    return (swept && busy.every((n) => n === 0)) || undefined;
  });
  await Promise.all(coordinators.map((d) => d.close()));
  await Promise.all(workers.map((w) => w.close()));
  // MONITOR reports commands in the order Redis ran them: once this ECHO is in the log, so is
  // every command of the shutdown before it.
  await probe.echo('slots-log-flushed');
  await waitFor(
    'the log to hold the shutdown',
    () => logged.some((l) => l.args[1] === 'slots-log-flushed') || undefined,
  );
  probe.disconnect();
  monitorClient.disconnect();
}

/** Groups the log into atomic units: a script's own commands follow its EVAL/EVALSHA in the log. */
function unitsOf(log: readonly Logged[]): Unit[] {
  const units: Unit[] = [];
  const transactions = new Map<string, Unit>();
  let current: Unit | undefined;
  for (const { source, args } of log) {
    const name = (args[0] ?? '').toLowerCase();
    if (source === 'lua') {
      current?.commands.push(args);
      continue;
    }
    if (name === 'multi') {
      const tx = { what: `MULTI from ${source}`, commands: [] };
      transactions.set(source, tx);
      current = undefined;
      continue;
    }
    const open = transactions.get(source);
    if (name === 'exec' || name === 'discard') {
      if (open) units.push(open);
      transactions.delete(source);
      current = undefined;
      continue;
    }
    if (open) {
      open.commands.push(args);
      current = open; // a script inside a transaction: its commands belong to the transaction
      continue;
    }
    current = { what: name, commands: [args] };
    units.push(current);
  }
  return units;
}

describe('hash slots of everything toolq touches', () => {
  it('every script and every multi-key command or transaction touches one slot', async () => {
    const units = unitsOf(logged);
    const admin = new Redis({ port: slotNode.port, host: '127.0.0.1' });
    try {
      const distinct = new Map<string, string[]>();
      for (const unit of units)
        for (const command of unit.commands) distinct.set(JSON.stringify(command), command);
      const keysOf = new Map<string, string[]>();
      const pipeline = admin.pipeline();
      for (const command of distinct.values()) pipeline.call('command', 'getkeys', ...command);
      const replies = (await pipeline.exec()) ?? [];
      [...distinct.keys()].forEach((id, i) => {
        const [err, keys] = replies[i] ?? [];
        // Commands without keys (PING, INFO, PUBLISH, CLIENT …) are refused by GETKEYS: no keys.
        keysOf.set(id, err ? [] : (keys as string[]));
      });
      const allKeys = [...new Set([...keysOf.values()].flat())];
      const slotPipeline = admin.pipeline();
      for (const key of allKeys) slotPipeline.call('cluster', 'keyslot', key);
      const slotReplies = (await slotPipeline.exec()) ?? [];
      const slotOf = new Map(allKeys.map((key, i) => [key, Number(slotReplies[i]?.[1])]));

      const scripts = units.filter((u) => /^eval/.test(u.what));
      const transactions = units.filter((u) => u.what.startsWith('MULTI'));
      const multiKey = units.filter((u) => {
        const keys = new Set(u.commands.flatMap((c) => keysOf.get(JSON.stringify(c)) ?? []));
        return keys.size > 1;
      });
      const crossSlot = units.flatMap((u) => {
        const keys = [...new Set(u.commands.flatMap((c) => keysOf.get(JSON.stringify(c)) ?? []))];
        const slots = new Set(keys.map((k) => slotOf.get(k)));
        return slots.size > 1 ? [`${u.what}: ${keys.map((k) => `${k}→${slotOf.get(k)}`).join(', ')}`] : [];
      });
      console.info(
        `slot check: ${units.length} units (${scripts.length} scripts, ${transactions.length} transactions, ` +
          `${multiKey.length} touching several keys), ${allKeys.length} distinct keys`,
      );
      // The workload reached the paths that matter: BullMQ's scripts, toolq's result script, MULTIs.
      expect(scripts.length).toBeGreaterThan(20);
      expect(transactions.length).toBeGreaterThanOrEqual(2);
      expect(multiKey.length).toBeGreaterThan(20);
      expect(scripts.some((u) => u.commands.some((c) => c[0]?.toLowerCase() === 'xadd'))).toBe(true);
      expect(crossSlot).toEqual([]);

      // Every key is tagged with its pool (or a lane of it) or its coordinator, except the keys
      // that stand alone (one key per command, checked above): the catalog (its specs in its slot),
      // batch names, the call log (the fleet's and each app's), delivery's keys (docs/delivery.md:
      // a worker's running jobs, the dead-worker sweep's lease, the workers' liveness, start markers; a cached result
      // and its lock share their own tag), the indexes of pending approvals (by expiry, by tool) and the set of tools with approvals, and flow control's
      // operator overrides and downstream holds (one hash each, read whole).
      const tagged =
        /^toolq:\{(alpha|beta)(\.t[0-9a-f]+)?\}:|^toolq:\{c\.coord-[ab]\}:|^toolq:cache:\{[0-9a-f]+\}/;
      const alone =
        /^toolq:(workers|waiting-pools|batch-name:[^:]+:[^:]+|calllog:\d+|calllog:app:[^:]+:\d+|running:[^:]+|dead-worker-sweep|liveness|started:[0-9a-f]+|approvals:expiring|approvals:pending-tool:[^:]+|approvals:tools|flow:limits|flow:held)$|^\{toolq:(workers\}:tools|waiting-pools\}:versions)$/;
      expect(allKeys.filter((k) => !tagged.test(k) && !alone.test(k))).toEqual([]);
      expect(allKeys).toContain('toolq:workers');
      // Different pools and different coordinators land in different slots.
      const slotsOfTag = (tag: string) =>
        new Set(allKeys.filter((k) => k.startsWith(`toolq:{${tag}}:`)).map((k) => slotOf.get(k)));
      const tagSlots = ['alpha', 'beta', 'c.coord-a', 'c.coord-b'].map((tag) => {
        const slots = slotsOfTag(tag);
        expect(slots.size).toBe(1);
        return [...slots][0];
      });
      expect(new Set(tagSlots).size).toBe(4);
    } finally {
      admin.disconnect();
    }
  });
});
