/**
 * Traces across processes: a real coordinator process and a real worker process export spans over
 * OTLP/HTTP to a small receiver here; the worker's spans of a call are children of the
 * coordinator's call span (the context travels in the job data), queue wait and run time are
 * spans with their durations, and an agent run's model turns are spans above its batches. Off
 * (no OTEL_EXPORTER_OTLP_ENDPOINT), the hooks do nothing and jobs carry no trace context.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { getTracer, inSpan, recordSpan } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { startBatchTrace } from '../src/batch-tracing.ts';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  arrayValue?: { values: OtlpValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: { key: string; value: OtlpValue }[];
  status?: { code?: number; message?: string };
}
interface ReceivedSpan extends OtlpSpan {
  service: string;
  attrs: Record<string, string | number | boolean | undefined>;
  durationMs: number;
}

const received: ReceivedSpan[] = [];
const contentTypes = new Set<string>();
let receiver: Server;
let receiverUrl: string;
let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let model: Awaited<ReturnType<typeof startScriptedModel>>;

const otlpValue = (v: OtlpValue) =>
  v.stringValue ?? (v.intValue === undefined ? undefined : Number(v.intValue)) ?? v.boolValue;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.add(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: OtlpValue }[] };
          scopeSpans: { spans: OtlpSpan[] }[];
        }[];
      };
      for (const rs of body.resourceSpans) {
        const service = String(
          otlpValue(rs.resource.attributes.find((a) => a.key === 'service.name')?.value ?? {}),
        );
        for (const span of rs.scopeSpans.flatMap((s) => s.spans)) {
          const attrs = Object.fromEntries((span.attributes ?? []).map((a) => [a.key, otlpValue(a.value)]));
          const durationMs = (Number(span.endTimeUnixNano) - Number(span.startTimeUnixNano)) / 1e6;
          received.push({ ...span, service, attrs, durationMs });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  redis = await startRedisServer();
  model = await startScriptedModel(
    toolTurnsScript([
      {
        calls: [
          { name: 'diag_sleep', input: { ms: 120 } },
          { name: 'diag_echo', input: { value: 1 } },
        ],
      },
    ]),
  );
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, OTEL_BSP_SCHEDULE_DELAY: '200' };
  [worker, coordinator] = await Promise.all([
    startWorkerProcess({ redisUrl: redis.url, env: otel }),
    startCoordinatorProcess({
      REDIS_URL: redis.url,
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      TOOLQ_MODEL: 'claude-sonnet-4-6',
      ...otel,
    }),
  ]);
});

afterAll(async () => {
  coordinator?.child.kill('SIGTERM');
  await Promise.all([coordinator?.exited, worker?.stop()]);
  await model?.close();
  await redis?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
});

/** Waits for a span to arrive; on timeout, lists every span received. */
function until<T>(what: string, find: () => T | undefined): Promise<T> {
  const detail = () =>
    `received:\n${received.map((s) => `${s.service} ${s.name} ${s.spanId}<-${s.parentSpanId ?? ''}`).join('\n')}`;
  return waitFor(what, find, { detail });
}

const childrenOf = (span: ReceivedSpan, name: string) =>
  received.filter((s) => s.parentSpanId === span.spanId && s.traceId === span.traceId && s.name === name);

describe('traces across a coordinator and a worker process', () => {
  it("links each worker span to the coordinator's call span, with queue wait and run time", async () => {
    const res = await fetch(`${coordinator.url}/v1/tool-batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        batch_id: 'traced-1',
        tool_uses: [
          { id: 'toolu_sleep', name: 'diag_sleep', input: { ms: 150 } },
          { id: 'toolu_fail', name: 'diag_fail', input: { message: 'traced failure' } },
        ],
      }),
    });
    expect(res.status).toBe(200);

    const batch = await until('the batch span', () =>
      received.find((s) => s.name === 'toolq.batch' && s.attrs['toolq.batch_id'] === 'traced-1'),
    );
    expect(batch.service).toBe('toolq-coordinator');
    expect(batch.attrs['toolq.batch.calls']).toBe(2);
    expect(batch.attrs['toolq.batch.errors']).toBe(1);
    expect(batch.durationMs).toBeGreaterThanOrEqual(150);

    const calls = await until('two call spans', () => {
      const found = childrenOf(batch, 'toolq.call');
      return found.length === 2 ? found : undefined;
    });
    const sleep = calls.find((c) => c.attrs['toolq.tool'] === 'diag_sleep');
    const fail = calls.find((c) => c.attrs['toolq.tool'] === 'diag_fail');
    expect(sleep?.attrs).toMatchObject({
      'toolq.outcome': 'ok',
      'toolq.pool': 'default',
      'toolq.tool_use_id': 'toolu_sleep',
    });
    expect(fail?.attrs).toMatchObject({ 'toolq.outcome': 'error' });
    expect(fail?.status?.code).toBe(2); // ERROR
    expect(sleep?.attrs['toolq.worker']).toBe(worker.id);

    for (const call of [sleep, fail]) {
      if (!call) throw new Error('call span missing');
      const [run] = await until(`the worker's run span of ${call.attrs['toolq.tool']}`, () => {
        const found = childrenOf(call, 'toolq.run');
        return found.length > 0 ? found : undefined;
      });
      const [wait] = childrenOf(call, 'toolq.queue_wait');
      expect(run?.service).toBe('toolq-worker');
      expect(wait?.service).toBe('toolq-worker');
      expect(run?.attrs).toMatchObject({
        'toolq.tool': call.attrs['toolq.tool'],
        'toolq.worker': worker.id,
        'toolq.batch.uid': batch.attrs['toolq.batch.uid'],
        'toolq.outcome': call.attrs['toolq.outcome'],
      });
      // The wait ends where the run starts, and both lie within the coordinator's call span.
      expect(Number(wait?.endTimeUnixNano)).toBe(Number(run?.startTimeUnixNano));
      expect(Number(wait?.startTimeUnixNano)).toBeGreaterThanOrEqual(Number(call.startTimeUnixNano));
      expect(Number(run?.endTimeUnixNano)).toBeLessThanOrEqual(Number(call.endTimeUnixNano));
    }
    const [sleepRun] = childrenOf(sleep as ReceivedSpan, 'toolq.run');
    // A 150 ms sleep, less what a timer may fire early and the span clock's sub-ms rounding (a CI
    // run measured 149.999872 ms): the run span covers the sleep, not some other interval.
    expect(sleepRun?.durationMs).toBeGreaterThanOrEqual(149);
    expect(sleepRun?.attrs['toolq.run_ms']).toBeGreaterThanOrEqual(149);
    expect([...contentTypes]).toEqual(['POST /v1/traces application/json']);
  });

  it("makes an agent run's model turns spans, with the turn's batch and the worker's runs below them", async () => {
    const started = await fetch(`${coordinator.url}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Sleep and echo.', tools: ['diag_sleep', 'diag_echo'] }),
    });
    expect(started.status).toBe(202);

    const run = await until('the agent run span', () => received.find((s) => s.name === 'toolq.agent.run'));
    expect(run.attrs).toMatchObject({ 'toolq.agent.status': 'end_turn', 'toolq.agent.tool_calls': 2 });
    const turns = childrenOf(run, 'toolq.model.turn').sort(
      (a, b) => Number(a.attrs['toolq.agent.iteration']) - Number(b.attrs['toolq.agent.iteration']),
    );
    expect(turns.map((t) => t.attrs['toolq.agent.iteration'])).toEqual([1, 2]);
    expect(turns[0]?.attrs['gen_ai.request.model']).toBe('claude-sonnet-4-6');
    expect(Number(turns[0]?.attrs['gen_ai.usage.output_tokens'])).toBeGreaterThan(0);

    // Streaming dispatches each call at its content_block_stop, inside the first turn.
    const batches = received.filter(
      (s) => s.name === 'toolq.batch' && s.traceId === run.traceId && s.parentSpanId !== undefined,
    );
    const parents = new Set(batches.map((b) => b.parentSpanId));
    expect([...parents].every((p) => p === turns[0]?.spanId || p === run.spanId)).toBe(true);
    const calls = batches.flatMap((b) => childrenOf(b, 'toolq.call'));
    expect(calls.map((c) => c.attrs['toolq.tool']).sort()).toEqual(['diag_echo', 'diag_sleep']);
    for (const call of calls) {
      await until(
        `the worker's run of ${call.attrs['toolq.tool']} in the agent's trace`,
        () => childrenOf(call, 'toolq.run')[0],
      );
    }
  });
});

describe('tracing off', () => {
  it('starts nothing and costs next to nothing per call', async () => {
    expect(getTracer()).toBeUndefined();
    expect(startBatchTrace('b', 'b', [{ tool: 't', toolUseId: 'u' }], Date.now())).toBeUndefined();
    const n = 1_000_000;
    let started = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (startBatchTrace('b', 'b', [], 0) !== undefined) started++;
      recordSpan({ name: 'toolq.run', start: 0, end: 1, attributes: {} });
    }
    const ns = Number(process.hrtime.bigint() - t0) / n;
    // Reported, not asserted: a per-call cost in ns is a speed, and speeds depend on the machine's
    // load (2.2 µs on two busy cores); "nothing" is what the test asserts.
    console.info(`tracing off: ${ns.toFixed(1)} ns per call for the coordinator's and the worker's hooks`);
    expect(started).toBe(0);
    expect(getTracer()).toBeUndefined();
    expect(await inSpan('x', {}, async () => 42)).toBe(42);
  });
});
