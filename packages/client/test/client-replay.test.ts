/**
 * What the client may send again, against a real coordinator, worker and redis-server, with a
 * real HTTP proxy in front that misbehaves on cue: it answers 503 after it forwarded a POST (the
 * batch ran), or resets the connection. A POST without a batch id is repeated only on a toolq 503
 * that proves nothing ran; a batch collected after a repeat must answer this request's tool_use ids.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RetryEvent, ToolqClient, ToolqHttpError } from '@toolq/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

/**
 * What the proxy does with the next POST: pass it through, forward it and answer 503, reset, or
 * answer as a coordinator shutting down does (503 SHUTTING_DOWN, before anything ran) without forwarding.
 */
type Misbehaviour = 'pass' | 'forward-then-503' | 'reset' | 'shutting-down';

interface Proxy {
  url: string;
  /** POSTs that reached the coordinator. */
  forwardedPosts: string[];
  /** Misbehaviours for the next POSTs, in order; then it passes everything. */
  next: Misbehaviour[];
  close(): Promise<void>;
}

async function startProxy(target: string): Promise<Proxy> {
  const upstream = new URL(target);
  const proxy: Omit<Proxy, 'url' | 'close'> = { forwardedPosts: [], next: [] };
  const forward = (req: IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
      const out = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end(body);
    });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const what = req.method === 'POST' ? (proxy.next.shift() ?? 'pass') : 'pass';
      if (what === 'reset') {
        req.socket.destroy();
        return;
      }
      if (what === 'shutting-down') {
        res
          .writeHead(503, { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ error: { code: 'SHUTTING_DOWN', message: 'the coordinator is shutting down' } }),
          );
        return;
      }
      if (req.method === 'POST') proxy.forwardedPosts.push(body.toString('utf8'));
      try {
        const answer = await forward(req, body);
        if (what === 'forward-then-503') {
          res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>503 Service Unavailable</h1>');
          return;
        }
        res.writeHead(answer.status, answer.headers).end(answer.body);
      } catch {
        res.writeHead(502).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let proxy: Proxy;

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startWorkerProcess({ redisUrl: redis.url });
  coordinator = await startCoordinatorProcess({ REDIS_URL: redis.url });
  proxy = await startProxy(coordinator.url);
});

afterAll(async () => {
  await proxy?.close();
  if (coordinator) await stopChild(coordinator.child);
  await worker?.stop().catch(() => undefined);
  await redis?.stop();
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

const client = (retries: RetryEvent[] = []) =>
  new ToolqClient({
    baseUrl: proxy.url,
    retry: { attempts: 4, initialDelayMs: 20 },
    onRetry: (e) => retries.push(e),
  });

describe('a POST repeated only when it is safe', () => {
  it("a proxy's 503 after it forwarded a batch without an id is not repeated: the batch runs once", async () => {
    proxy.forwardedPosts.length = 0;
    proxy.next = ['forward-then-503'];
    const retries: RetryEvent[] = [];
    const err = await rejection(
      client(retries).createToolBatch([{ id: 'toolu_once', name: 'diag_echo', input: { value: 'once' } }]),
    );
    expect(err).toBeInstanceOf(ToolqHttpError);
    expect(err).toMatchObject({ status: 503, code: 'HTTP_503', attempts: 1 });
    expect(retries).toEqual([]);
    expect(proxy.forwardedPosts).toHaveLength(1);
  });

  it("toolq's own 503 SHUTTING_DOWN (refused before anything ran) is repeated, even without an id", async () => {
    proxy.forwardedPosts.length = 0;
    proxy.next = ['shutting-down'];
    const retries: RetryEvent[] = [];
    const batch = await client(retries).createToolBatch([
      { id: 'toolu_again', name: 'diag_echo', input: { value: 'again' } },
    ]);
    expect(batch.tool_results).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_again', content: 'again' },
    ]);
    expect(retries.map((r) => r.reason)).toEqual(['503 SHUTTING_DOWN']);
    expect(proxy.forwardedPosts).toHaveLength(1);
  });

  it("a proxy's 503 after it forwarded a batch with an id: the repeat finds it (409) and collects it", async () => {
    proxy.forwardedPosts.length = 0;
    proxy.next = ['forward-then-503'];
    const retries: RetryEvent[] = [];
    const batch = await client(retries).createToolBatch(
      [{ id: 'toolu_kept', name: 'diag_echo', input: { value: 'kept' } }],
      { batchId: 'replay-after-proxy-503' },
    );
    expect(batch.tool_results).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_kept', content: 'kept' }]);
    expect(retries.map((r) => r.reason)).toEqual(['503 HTTP_503']);
    // Two POSTs reached the coordinator, the batch ran once: the second was answered 409.
    expect(proxy.forwardedPosts).toHaveLength(2);
    expect(batch.stats.calls).toHaveLength(1);
  });

  it('a reused batch id and a reset connection: the older batch under that id is not returned as this one', async () => {
    const c = client();
    await c.createToolBatch([{ id: 'toolu_old', name: 'diag_echo', input: { value: 'old' } }], {
      batchId: 'reused-id',
    });
    proxy.next = ['reset'];
    const err = await rejection(
      c.createToolBatch([{ id: 'toolu_new', name: 'diag_echo', input: { value: 'new' } }], {
        batchId: 'reused-id',
      }),
    );
    expect(err).toBeInstanceOf(ToolqHttpError);
    expect(err).toMatchObject({ status: 409, code: 'BATCH_EXISTS' });
    expect((err as Error).message).toMatch(/answers other tool_use ids/);
  });
});
