/**
 * The run event hub against a real Redis, with the log written directly: streams joining at any
 * moment, from any Last-Event-ID, while events pour in, each get exactly the events after their
 * id, in order, to the final one; a run joining wakes the blocked reader at once.
 */
import { createRedis, type Redis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCommand, infoFields } from '../../../test-support/redis-processes.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { RunEventHub } from '../src/runs/run-event-hub.ts';
import { RunStore, type StoredEvent } from '../src/runs/run-store.ts';

let server: RedisServer;
let redis: Redis;
let store: RunStore;

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
  store = new RunStore(redis, 'hubtest', 60_000);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

let runs = 0;
async function newRun(): Promise<string> {
  runs += 1;
  const runId = `run_${runs.toString(16).padStart(24, '0')}`;
  await redis.hset(store.keys(runId).record, 'app', 'alpha', 'status', 'running');
  return runId;
}

const append = (runId: string, type: string, n: number) =>
  redis.xadd(
    store.keys(runId).events,
    '*',
    'type',
    type,
    'data',
    JSON.stringify({ type, n }),
  ) as Promise<string>;

/** Status first, as the run's own scripts do: a stream that reads `running` then an empty log waits on. */
async function finish(runId: string): Promise<string> {
  await redis.hset(store.keys(runId).record, 'status', 'done');
  return append(runId, 'done', -1);
}

/** A stream as the route runs it: everything written, until it ends. */
function follow(hub: RunEventHub, runId: string, after: string) {
  const written: StoredEvent[] = [];
  const left = new AbortController();
  const ended = hub.follow(
    runId,
    after,
    { write: (e) => written.push(...e), keepAlive: () => undefined },
    left.signal,
  );
  return { written, ended, left };
}

describe('RunEventHub', () => {
  it('gives every stream exactly the events after its id, whenever it joins, while events are being written', async () => {
    const hub = new RunEventHub(redis, store, { maxStreamsPerApp: 1_000 });
    try {
      const runId = await newRun();
      const ids: string[] = [];
      const streams: { after: string; stream: ReturnType<typeof follow> }[] = [];
      for (let n = 0; n < 600; n += 1) {
        ids.push(await append(runId, 'text', n));
        if (n % 20 === 5) {
          // From the start, from an id just written, from one a while back.
          for (const after of ['0', ids[n] ?? '0', ids[Math.max(0, n - 50)] ?? '0']) {
            streams.push({ after, stream: follow(hub, runId, after) });
          }
        }
        if (n % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      ids.push(await finish(runId));
      await Promise.all(streams.map((s) => s.stream.ended));
      for (const { after, stream } of streams) {
        const expected = after === '0' ? ids : ids.slice(ids.indexOf(after) + 1);
        expect(stream.written.map((e) => e.id)).toEqual(expected);
      }
      expect(streams.length).toBe(90);
    } finally {
      await hub.close();
    }
  });

  it('a Last-Event-ID past the end of the log moves no other stream of the run, nor makes it spin', async () => {
    const hub = new RunEventHub(redis, store, { maxStreamsPerApp: 10 });
    try {
      const runId = await newRun();
      const ids = [await append(runId, 'text', 0)];
      const future = follow(hub, runId, `${Date.now() + 3_600_000}-0`);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the reader follows the run for it alone
      const xrangesBefore = await calls('xrange');
      const plain = follow(hub, runId, '0');
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (let n = 1; n <= 5; n += 1) ids.push(await append(runId, 'text', n));
      ids.push(await finish(runId));
      await plain.ended;
      expect(plain.written.map((e) => e.id)).toEqual(ids);
      // Its own log reads: a couple, not one after another while it waits.
      expect((await calls('xrange')) - xrangesBefore).toBeLessThan(20);
      expect(future.written).toEqual([]);
      future.left.abort();
      await future.ended;
    } finally {
      await hub.close();
    }
  });

  it('wakes the blocked reader when a run joins: its live events come at once, not after the read times out', async () => {
    // Reads that block a minute: an event that waited for the read to time out comes 60 s late,
    // one woken comes at once (a 2 s read against a 1 s bound failed under load).
    const hub = new RunEventHub(redis, store, { maxStreamsPerApp: 10, readBlockMs: 60_000 });
    try {
      const first = await newRun();
      const a = follow(hub, first, '0');
      // Conditions, not 200 ms and 100 ms (a reader not yet blocked, or not yet woken, under load).
      await waitFor(
        'the reader to block on `first` alone',
        async () => (await blockedClients()) > 0 || undefined,
      );
      const second = await newRun();
      const before = await calls('client|unblock');
      const b = follow(hub, second, '0');
      await waitFor(
        'the reader to be woken for `second`',
        async () => (await calls('client|unblock')) > before || undefined,
      );
      const unblocks = (await calls('client|unblock')) - before;
      const sent = Date.now();
      await append(second, 'text', 1);
      await waitFor('the live event of the run that joined', () => b.written.length > 0, {
        timeoutMs: 50_000,
        intervalMs: 5,
      });
      // Long before the 60 s read could time out: it came from a read that included `second`.
      expect(Date.now() - sent).toBeLessThan(30_000);
      expect(unblocks).toBeGreaterThan(0);
      await Promise.all([finish(first), finish(second)]);
      await Promise.all([a.ended, b.ended]);
      expect(b.written.map((e) => e.type)).toEqual(['text', 'done']);
    } finally {
      await hub.close();
    }
  });

  it('counts streams per app against the cap, and frees them', () => {
    const hub = new RunEventHub(redis, store, { maxStreamsPerApp: 2 });
    const one = hub.admit('alpha');
    hub.admit('alpha');
    expect(() => hub.admit('alpha')).toThrow(/TOOLQ_MAX_STREAMS_PER_APP=2/);
    hub.admit('beta');
    one();
    one(); // twice is once
    expect(hub.open('alpha')).toBe(1);
    hub.admit('alpha');
    expect(() => hub.admit('alpha')).toThrow(expect.objectContaining({ code: 'TOO_MANY_STREAMS' }));
  });
});

/** How many times Redis ran a command (`xrange`, `client|unblock`). */
/** Clients blocked in a command (here: the hub's reader in its XREAD). */
async function blockedClients(): Promise<number> {
  const info = infoFields(await adminCommand(server.port, server.access, ['INFO', 'clients']));
  return Number(info.get('blocked_clients') ?? 0);
}

async function calls(command: string): Promise<number> {
  const stats = infoFields(await adminCommand(server.port, server.access, ['INFO', 'commandstats']));
  const line = stats.get(`cmdstat_${command}`) ?? '';
  return Number(/calls=(\d+)/.exec(line)?.[1] ?? 0);
}
