import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  isScriptedError,
  type ReceivedRequest,
  type Script,
  type ScriptContext,
  type ScriptedTurn,
  toolUseIdGenerator,
} from './script.ts';
import { pause, renderResponse, totalDelayMs, writeSse } from './sse.ts';
import { countAssistantMessages, lastToolResults, lastUserText } from './transcript.ts';
import { validateRequestBody } from './validate-messages.ts';

/**
 * A scripted Anthropic Messages API on loopback: `POST /v1/messages` (any query string), JSON or
 * SSE, checked like the real API. Point the real SDK at it with `baseURL: model.url`.
 */

export interface ScriptedModelOptions {
  script: Script;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Characters per text_delta / thinking_delta (default 16). */
  textChunkSize?: number;
  /** Characters per input_json_delta (default 12). */
  jsonChunkSize?: number;
  /** Ids for tool_use blocks the script leaves without one (default `toolu_0001`, …). */
  toolUseIds?: () => string;
  /** Larger bodies get 413 (default 32 MiB, as the real API). */
  maxBodyBytes?: number;
}

export interface ScriptedModel {
  /** Base URL for the SDK (`new Anthropic({ baseURL: model.url })`). */
  url: string;
  /** Every request received, in order, with the status and body it was answered with. */
  requests: ReceivedRequest[];
  close(): Promise<void>;
}

export async function startScriptedModel(options: ScriptedModelOptions | Script): Promise<ScriptedModel> {
  const opts = typeof options === 'function' ? { script: options } : options;
  const requests: ReceivedRequest[] = [];
  const closing = new AbortController();
  const nextToolUseId = opts.toolUseIds ?? toolUseIdGenerator();
  const nextServerToolUseId = toolUseIdGenerator('srvtoolu_');
  const maxBodyBytes = opts.maxBodyBytes ?? 32 * 1024 * 1024;
  let messages = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req, maxBodyBytes);
    const headers = flattenHeaders(req);
    const record: ReceivedRequest = {
      index: requests.length,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers,
      betas: (headers['anthropic-beta'] ?? '')
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean),
      body: raw,
      receivedAt: Date.now(),
      status: 0,
    };
    requests.push(record);
    const requestId = `req_scripted_${String(record.index + 1).padStart(4, '0')}`;
    res.setHeader('request-id', requestId);
    const fail = (status: number, type: string, message: string, extra: Record<string, string> = {}) => {
      const body = { type: 'error', error: { type, message }, request_id: requestId };
      record.status = status;
      record.response = body;
      res.writeHead(status, { 'content-type': 'application/json', ...extra });
      res.end(JSON.stringify(body));
    };

    const { pathname } = new URL(record.path, 'http://scripted.invalid');
    if (pathname !== '/v1/messages' || record.method !== 'POST') {
      return fail(404, 'not_found_error', `Not found: ${record.method} ${pathname}`);
    }
    if (raw === undefined)
      return fail(413, 'request_too_large', `Request exceeds the maximum size of ${maxBodyBytes} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (error) {
      return fail(
        400,
        'invalid_request_error',
        `Request body is not valid JSON: ${(error as Error).message}`,
      );
    }
    record.body = parsed;
    const checked = validateRequestBody(parsed, record.betas);
    if (!checked.ok) return fail(400, 'invalid_request_error', checked.message);
    const body = checked.body;

    const ctx: ScriptContext = {
      requestIndex: record.index,
      turn: countAssistantMessages(body.messages),
      request: record,
      body,
      model: body.model,
      messages: body.messages,
      tools: body.tools ?? [],
      stream: body.stream === true,
      maxTokens: body.max_tokens,
      headers,
      betas: record.betas,
      toolResults: lastToolResults(body.messages),
      lastUserText: lastUserText(body.messages),
      nextToolUseId,
    };
    let turn: ScriptedTurn;
    try {
      turn = await opts.script(ctx);
    } catch (error) {
      // A failing script is a bug in the test; say so loudly instead of returning something plausible.
      return fail(
        500,
        'api_error',
        `Scripted model script failed: ${(error as Error).message ?? String(error)}`,
        {
          'x-should-retry': 'false',
        },
      );
    }

    const signal = AbortSignal.any([closing.signal, abortOnClose(res)]);
    if (isScriptedError(turn)) {
      await pause(turn.delayMs ?? 0, signal);
      if (signal.aborted) return;
      return fail(turn.error.status, turn.error.type, turn.error.message, turn.error.headers);
    }
    messages += 1;
    const rendered = renderResponse(turn, body, {
      messageId: `msg_scripted_${String(messages).padStart(4, '0')}`,
      nextToolUseId,
      nextServerToolUseId,
      textChunkSize: opts.textChunkSize ?? 16,
      jsonChunkSize: opts.jsonChunkSize ?? 12,
    });
    record.response = rendered.message;
    if (ctx.stream) {
      await pause(turn.delayMs ?? 0, signal);
      if (signal.aborted) return;
      record.status = 200;
      await writeSse(res, rendered, signal, turn.streamError);
      return;
    }
    // A JSON answer arrives when the whole message would have been generated.
    await pause((turn.delayMs ?? 0) + totalDelayMs(rendered), signal);
    if (signal.aborted) return;
    record.status = 200;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(rendered.message));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: String(error) } }));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    requests,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        // The SDK keeps connections alive; without this close() would wait for their idle timeout.
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

/** The body as text, or undefined when it is larger than the limit. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const piece of req) {
    const buffer = piece as Buffer;
    size += buffer.length;
    if (size <= limit) chunks.push(buffer);
  }
  return size > limit ? undefined : Buffer.concat(chunks).toString('utf8');
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function abortOnClose(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => controller.abort());
  return controller.signal;
}
