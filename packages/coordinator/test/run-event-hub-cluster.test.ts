/**
 * The run event hub on a real Redis Cluster, where each run's keys have a slot of their own and
 * one XREAD cannot cover two runs: it polls the followed runs on the shared connection, adds no
 * connection, and every stream still gets exactly the events after its id.
 */
import { createRedis, type Redis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisCluster, startRedisCluster } from '../../../test-support/redis-cluster.ts';
import { infoFields } from '../../../test-support/redis-processes.ts';
import { RunEventHub } from '../src/runs/run-event-hub.ts';
import { RunStore, type StoredEvent } from '../src/runs/run-store.ts';

let cluster: RedisCluster;
let redis: Redis;
let store: RunStore;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = createRedis(cluster.config);
  store = new RunStore(redis, 'hubtest', 60_000);
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const append = (runId: string, type: string) =>
  redis.xadd(store.keys(runId).events, '*', 'type', type, 'data', '{}') as Promise<string>;

async function clients(): Promise<number> {
  const counts = await Promise.all(
    cluster.nodes.map(async (n) =>
      Number(infoFields(await cluster.command(n.port, ['INFO', 'clients'])).get('connected_clients')),
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

describe('RunEventHub on a Redis Cluster', () => {
  it('follows runs on different slots without a connection more, each stream exact', async () => {
    const hub = new RunEventHub(redis, store, { maxStreamsPerApp: 1_000 });
    try {
      const runIds = Array.from({ length: 6 }, (_, i) => `run_${(i + 1).toString(16).padStart(24, 'a')}`);
      const slots = new Set(await Promise.all(runIds.map((id) => cluster.keySlot(store.keys(id).events))));
      expect(slots.size).toBe(runIds.length);
      for (const id of runIds) await redis.hset(store.keys(id).record, 'app', 'alpha', 'status', 'running');
      await append(runIds[0] ?? '', 'text'); // every connection of the shared client is open
      const before = await clients();
      const ids = new Map(runIds.map((id) => [id, [] as string[]]));
      const streams: { runId: string; after: string; written: StoredEvent[]; ended: Promise<void> }[] = [];
      for (let n = 0; n < 40; n += 1) {
        for (const runId of runIds) ids.get(runId)?.push(await append(runId, 'text'));
        if (n % 8 === 3) {
          for (const runId of runIds) {
            const after = ids.get(runId)?.at(-2) ?? '0';
            const written: StoredEvent[] = [];
            const ended = hub.follow(
              runId,
              after,
              { write: (e) => written.push(...e), keepAlive: () => undefined },
              new AbortController().signal,
            );
            streams.push({ runId, after, written, ended });
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const during = await clients();
      for (const runId of runIds) {
        await redis.hset(store.keys(runId).record, 'status', 'done');
        ids.get(runId)?.push(await append(runId, 'done'));
      }
      await Promise.all(streams.map((s) => s.ended));
      expect(during - before).toBe(0);
      for (const s of streams) {
        const all = ids.get(s.runId) ?? [];
        expect(s.written.map((e) => e.id)).toEqual(all.slice(all.indexOf(s.after) + 1));
      }
      expect(streams.length).toBe(30);
    } finally {
      await hub.close();
    }
  });
});
