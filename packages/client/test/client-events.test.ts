/**
 * client.runEvents() against a real coordinator (with the scripted model), a real worker and a
 * redis-server of its own, through a real TCP proxy that the test cuts mid-run: the iterator
 * reconnects with Last-Event-ID and hands over every event the server stored, once, in order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type RetryEvent,
  type RunEvent,
  ToolqClient,
  ToolqConnectionError,
  ToolqHttpError,
  ToolqOptionError,
} from '@toolq/client';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const TOKEN = 'client-events-token-0123456789';
const RUN_TOOLS = fileURLToPath(new URL('../../../test-support/run-tools.ts', import.meta.url));
const RUN_TOOL_NAMES = ['test_slow'];

interface Proxy {
  url: string;
  /** The request heads the proxy saw, in order (what the client sent on each connection). */
  heads: string[];
  /** Resets every open connection, both sides. */
  cut(): void;
  /** Stops passing the coordinator's bytes on over the open connections, which stay open: a dead peer. */
  freeze(): void;
  /** While down, every new connection is reset at once. */
  down: boolean;
  close(): Promise<void>;
}

/** A TCP proxy: bytes through unchanged, so the SSE stream is the coordinator's own. */
async function startTcpProxy(target: string): Promise<Proxy> {
  const upstream = new URL(target);
  const open = new Set<Socket>();
  const pairs = new Set<[client: Socket, server: Socket]>();
  const proxy = { heads: [] as string[], down: false };
  const server: Server = createServer((client) => {
    if (proxy.down) {
      client.resetAndDestroy();
      return;
    }
    const server = tcpConnect(Number(upstream.port), upstream.hostname);
    for (const s of [client, server]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    // Requests of one kept-alive connection come one after another on it.
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (/^(GET|POST|DELETE) \//.test(text)) proxy.heads.push(text);
    });
    client.pipe(server);
    server.pipe(client);
    const pair: [Socket, Socket] = [client, server];
    pairs.add(pair);
    client.on('close', () => pairs.delete(pair));
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${port}`,
    cut: () => {
      for (const s of [...open]) s.resetAndDestroy();
    },
    freeze: () => {
      for (const [client, server] of pairs) {
        server.unpipe(client);
        server.pause();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of [...open]) s.destroy();
        server.close(() => resolve());
      }),
  });
}

let dir: string;
let redis: RedisServer;
let model: ScriptedModel;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let proxy: Proxy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-client-events-'));
  redis = await startRedisServer();
  // `steps:<n>:<ms>`: n turns of one test_slow call of <ms> each, then a final answer.
  model = await startScriptedModel((ctx) => {
    const first = (ctx.body as { messages?: { content: unknown }[] }).messages?.[0]?.content;
    const [, n = '1', ms = '0'] = (typeof first === 'string' ? first : '').split(':');
    const turns = Array.from({ length: Number(n) }, (_, i) => ({
      text: `Step ${i + 1}.`,
      calls: [{ name: 'test_slow', input: { ms: Number(ms), label: `step-${i + 1}` } }],
    }));
    return toolTurnsScript(turns)(ctx);
  });
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: RUN_TOOLS,
    concurrency: 2,
    env: { TOOLQ_TEST_EXECUTIONS: join(dir, 'executions.log') },
  });
  coordinator = await startCoordinatorProcess({
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_API_TOKEN: TOKEN,
  });
  proxy = await startTcpProxy(coordinator.url);
});

afterAll(async () => {
  await proxy?.close();
  if (coordinator) await stopChild(coordinator.child);
  await worker?.stop().catch(() => undefined);
  await model?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const direct = () => new ToolqClient({ baseUrl: coordinator.url, token: TOKEN });

/** The run's stored events as the server sends them, read without the client (the stream ends after the final one). */
async function storedEvents(runId: string): Promise<{ id: string; type: string; data: unknown }[]> {
  const res = await fetch(`${coordinator.url}/v1/runs/${runId}/events`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(res.status).toBe(200);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const field = (name: string) =>
        block
          .split('\n')
          .find((l) => l.startsWith(`${name}: `))
          ?.slice(name.length + 2) ?? '';
      return { id: field('id'), type: field('event'), data: JSON.parse(field('data')) as unknown };
    });
}

async function collect(iterable: AsyncIterable<RunEvent>, each?: (e: RunEvent) => void): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  for await (const event of iterable) {
    events.push(event);
    each?.(event);
  }
  return events;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('runEvents', () => {
  it('follows a whole run: every stored event, in order, typed, then ends after the final one', async () => {
    const client = direct();
    const { run_id } = await client.createRun({ prompt: 'steps:2:50', tools: RUN_TOOL_NAMES });
    const events = await collect(client.runEvents(run_id));
    expect(events.map(({ id, type, data }) => ({ id, type, data }))).toEqual(await storedEvents(run_id));
    expect(events.at(0)?.type).toBe('run_started');
    expect(events.at(-1)?.type).toBe('done');
    expect(events.filter((e) => e.type === 'tool_finished')).toHaveLength(2);
    const finished = events.find((e) => e.type === 'tool_finished');
    // Narrowed by type: the data of a tool_finished event.
    if (finished?.type === 'tool_finished') expect(finished.data.outcome).toBe('ok');
    for (const e of events) expect(e.data.type).toBe(e.type);

    // From an event on: exactly the ones after it; after the final one: none, and it ends.
    const third = events[2];
    expect(third).toBeDefined();
    const rest = await collect(client.runEvents(run_id, { lastEventId: third?.id ?? '' }));
    expect(rest).toEqual(events.slice(3));
    const none = await collect(client.runEvents(run_id, { lastEventId: events.at(-1)?.id ?? '' }));
    expect(none).toEqual([]);
  });

  it('resumes after the connection is cut mid-run, twice: no event lost or repeated', async () => {
    const retries: RetryEvent[] = [];
    const client = new ToolqClient({ baseUrl: proxy.url, token: TOKEN, onRetry: (e) => retries.push(e) });
    const { run_id } = await client.createRun({ prompt: 'steps:3:600', tools: RUN_TOOL_NAMES });
    const before = proxy.heads.length;
    let cuts = 0;
    const events = await collect(client.runEvents(run_id, { reconnectDelayMs: 50 }), (e) => {
      // Cut while a slow call runs: the stream is live, the next events are still to come.
      if (e.type === 'tool_started' && cuts < 2) {
        cuts += 1;
        proxy.cut();
      }
    });
    expect(cuts).toBe(2);
    const stored = await storedEvents(run_id);
    expect(events.map(({ id, type, data }) => ({ id, type, data }))).toEqual(stored);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(events.at(-1)?.type).toBe('done');

    // The POST, then three GETs of the stream: the reconnects named the last event handed over.
    const gets = proxy.heads.slice(before).filter((h) => h.startsWith('GET '));
    expect(gets).toHaveLength(3);
    expect(gets[0]).not.toMatch(/last-event-id/i);
    // Each reconnect named an event handed over at or after the tool_started it was cut at.
    const ids = events.map((e) => e.id);
    const started = events.flatMap((e, i) => (e.type === 'tool_started' ? [i] : []));
    const resumedAt = gets.slice(1).map((h) => ids.indexOf(/last-event-id: (\S+)/i.exec(h)?.[1] ?? ''));
    expect(resumedAt[0]).toBeGreaterThanOrEqual(started[0] ?? Number.NaN);
    expect(resumedAt[1]).toBeGreaterThanOrEqual(started[1] ?? Number.NaN);
    expect(resumedAt[1]).toBeGreaterThan(resumedAt[0] ?? Number.NaN);
    expect(retries).toHaveLength(2);
    expect(retries.every((r) => r.method === 'GET' && r.path === `/v1/runs/${run_id}/events`)).toBe(true);
    expect(retries.every((r) => r.attempt === 1)).toBe(true);
  });

  it('replaces a connection over which nothing comes for idleTimeoutMs (a dead peer, no reset)', async () => {
    const retries: RetryEvent[] = [];
    const client = new ToolqClient({ baseUrl: proxy.url, token: TOKEN, onRetry: (e) => retries.push(e) });
    const { run_id } = await client.createRun({ prompt: 'steps:2:800', tools: RUN_TOOL_NAMES });
    let frozen = false;
    const events = await collect(
      client.runEvents(run_id, { idleTimeoutMs: 1500, reconnectDelayMs: 20 }),
      (e) => {
        if (e.type === 'tool_started' && !frozen) {
          frozen = true;
          proxy.freeze();
        }
      },
    );
    expect(events.map(({ id, type, data }) => ({ id, type, data }))).toEqual(await storedEvents(run_id));
    expect(retries[0]?.reason).toBe('nothing received for 1500 ms');
  });

  it('gives up after maxReconnects failed reconnects in a row, with the connection error', async () => {
    const retries: RetryEvent[] = [];
    const client = new ToolqClient({ baseUrl: proxy.url, token: TOKEN, onRetry: (e) => retries.push(e) });
    const { run_id } = await client.createRun({ prompt: 'steps:1:3000', tools: RUN_TOOL_NAMES });
    const seen: RunEvent[] = [];
    const err = await rejection(
      collect(client.runEvents(run_id, { maxReconnects: 2, reconnectDelayMs: 20 }), (e) => {
        seen.push(e);
        if (e.type === 'tool_started') {
          proxy.down = true;
          proxy.cut();
        }
      }),
    );
    proxy.down = false;
    expect(err).toBeInstanceOf(ToolqConnectionError);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
    // Bounded backoff: doubling from 20 ms, half of it jitter.
    expect(retries[0]?.delayMs).toBeGreaterThanOrEqual(10);
    expect(retries[1]?.delayMs).toBeLessThanOrEqual(40);
    // Events of the chunk the cut came in were still handed over; none after it.
    expect(seen.some((e) => e.type === 'tool_started')).toBe(true);
    expect(seen.some((e) => e.type === 'tool_finished')).toBe(false);
    await waitFor(
      'the run to finish',
      async () => (await direct().getRun(run_id)).status === 'done' || undefined,
    );
  });

  it('ends when its signal aborts, with the reason, mid-stream and while waiting to reconnect', async () => {
    const client = new ToolqClient({ baseUrl: proxy.url, token: TOKEN });
    // A 10 s step: ending at the run's end would take 10 s or more, on any machine.
    const { run_id } = await client.createRun({ prompt: 'steps:1:10000', tools: RUN_TOOL_NAMES });
    const controller = new AbortController();
    const reason = new Error('enough');
    const started = Date.now();
    const err = await rejection(
      collect(client.runEvents(run_id, { signal: controller.signal }), (e) => {
        if (e.type === 'tool_started') controller.abort(reason);
      }),
    );
    expect(err).toBe(reason);
    // Not at the run's end (2 s was this run's whole step: the first events alone can take
    // that long at load 30).
    expect(Date.now() - started).toBeLessThan(8_000);

    const waiting = new AbortController();
    const later = new Error('stop waiting');
    const { run_id: long } = await client.createRun({ prompt: 'steps:1:10000', tools: RUN_TOOL_NAMES });
    const err2 = await rejection(
      collect(
        client.runEvents(long, {
          signal: waiting.signal,
          reconnectDelayMs: 60_000,
          maxReconnectDelayMs: 60_000,
        }),
        () => {
          proxy.cut();
          setTimeout(() => waiting.abort(later), 50);
        },
      ),
    );
    expect(err2).toBe(later);
    await direct().cancelRun(long);

    // Breaking out of the loop closes the stream too.
    for await (const e of direct().runEvents(run_id)) {
      expect(e.type).toBe('run_started');
      break;
    }
  });

  it('answers an unknown run with 404, and checks its options before sending anything', async () => {
    const client = direct();
    const err = await rejection(collect(client.runEvents('run_000000000000000000000000')));
    expect(err).toBeInstanceOf(ToolqHttpError);
    expect(err).toMatchObject({ status: 404, code: 'NOT_FOUND' });

    const misuse = (options: Record<string, unknown>) => {
      try {
        client.runEvents('run_x', options);
      } catch (e) {
        return e;
      }
      throw new Error('expected a ToolqOptionError');
    };
    expect(misuse({ lastEventID: '1-0' })).toMatchObject({
      option: 'lastEventID',
      message: expect.stringMatching(/did you mean lastEventId/),
    });
    expect(misuse({ lastEventId: 'abc' })).toMatchObject({ option: 'lastEventId' });
    expect(misuse({ maxReconnects: -1 })).toMatchObject({ option: 'maxReconnects' });
    expect(misuse({ maxReconnects: 1.5 })).toMatchObject({ option: 'maxReconnects' });
    expect(misuse({ signal: 'x' })).toMatchObject({ option: 'signal' });
    expect(misuse({ idleTimeoutMs: 0 })).toMatchObject({ option: 'idleTimeoutMs' });
    expect(misuse({ timeoutMs: 1000 })).toMatchObject({ option: 'timeoutMs' });
    expect(misuse({ reconnectDelayMs: 5000, maxReconnectDelayMs: 100 })).toMatchObject({
      option: 'reconnectDelayMs',
    });
    expect(misuse({ lastEventID: '1-0' })).toBeInstanceOf(ToolqOptionError);
    expect(() => client.runEvents('')).toThrow(ToolqOptionError);
  });
});
