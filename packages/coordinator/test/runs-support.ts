/**
 * What the durable-run tests share: HTTP helpers for the run API, an SSE reader that parses the
 * stream as a client sees it, and a scripted model that picks its conversation by the prompt.
 */
import { readFileSync } from 'node:fs';
import type { ReceivedRequest, Script, ScriptContext } from '@toolq/scripted-model';
import { toolTurnsScript } from '@toolq/scripted-model';
import { waitFor } from '../../../test-support/wait-for.ts';

/** The tools of test-support/run-tools.ts, which runsScript's conversations call. */
export const RUN_TOOL_NAMES = ['test_echo', 'test_slow'];

export interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown> & { type: string };
}

export function api(
  url: string,
  path: string,
  init: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...init.headers,
    },
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
}

/** Reads an SSE answer to its end (the server ends it after the final event), or until `stop` says so. */
export async function readSse(
  url: string,
  path: string,
  options: { token?: string; headers?: Record<string, string>; stop?: (e: SseEvent) => boolean } = {},
): Promise<{ status: number; contentType: string | null; events: SseEvent[] }> {
  const controller = new AbortController();
  const res = await fetch(`${url}${path}`, {
    headers: { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...options.headers },
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  if (res.status !== 200 || !res.body)
    return { status: res.status, contentType: res.headers.get('content-type'), events };
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        const fields = new Map<string, string>();
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const at = line.indexOf(': ');
          if (at > 0) fields.set(line.slice(0, at), line.slice(at + 2));
        }
        if (!fields.has('data')) continue;
        const event = {
          id: fields.get('id') ?? '',
          event: fields.get('event') ?? 'message',
          data: JSON.parse(fields.get('data') ?? '{}') as SseEvent['data'],
        };
        events.push(event);
        if (options.stop?.(event)) {
          controller.abort();
          return { status: res.status, contentType: res.headers.get('content-type'), events };
        }
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
  return { status: res.status, contentType: res.headers.get('content-type'), events };
}

export interface RunView {
  run_id: string;
  status: string;
  coordinator?: string;
  takeovers: number;
  result?: { status: string; text: string; calls: { name: string; worker?: string }[] };
  error?: { code: string; message: string };
}

export async function getRun(url: string, runId: string, token?: string): Promise<RunView> {
  const res = await api(url, `/v1/runs/${runId}`, token ? { token } : {});
  if (res.status !== 200) throw new Error(`GET run ${runId}: ${res.status} ${await res.text()}`);
  return (await res.json()) as RunView;
}

export function waitForRun(url: string, runId: string, token?: string, ms = 30_000): Promise<RunView> {
  return waitFor(
    `run ${runId} to finish`,
    async () => {
      const run = await getRun(url, runId, token);
      return run.status === 'running' ? undefined : run;
    },
    ms,
  );
}

/** Lines of the tools' execution log (see test-support/run-tools.ts). */
export function executions(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The prompt of a request to the scripted model (its first user message). */
export function promptOf(request: ReceivedRequest | ScriptContext['body']): string {
  const body = ('body' in request ? request.body : request) as { messages?: { content: unknown }[] };
  const first = body?.messages?.[0]?.content;
  return typeof first === 'string' ? first : '';
}

/**
 * One scripted model for every run of the suite, its conversation chosen by the prompt:
 * `echo:<tag>` two turns of echo calls; `slow:<label>:<ms>` one slow call; anything else answers
 * at once without tools.
 */
export function runsScript(): Script {
  const plain = toolTurnsScript([]);
  return (ctx) => {
    const prompt = promptOf(ctx.body);
    const [kind, label = '', ms = '0'] = prompt.split(':');
    if (kind === 'echo') {
      return toolTurnsScript([
        {
          text: 'Two lookups first.',
          calls: [
            { name: 'test_echo', input: { value: `${label}-one` } },
            { name: 'test_echo', input: { value: `${label}-two` } },
          ],
        },
        { calls: [{ name: 'test_echo', input: { value: `${label}-three` } }] },
      ])(ctx);
    }
    if (kind === 'slow') {
      return toolTurnsScript([{ calls: [{ name: 'test_slow', input: { ms: Number(ms), label } }] }])(ctx);
    }
    return plain(ctx);
  };
}
