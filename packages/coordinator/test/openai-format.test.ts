/**
 * OpenAI-format callers: the real `openai` client against a scripted Chat Completions / Responses
 * endpoint (a small HTTP server here) gets tool calls; they run on the fleet through toolq's HTTP
 * API and through the Dispatcher; the answers go back to the endpoint through the real client.
 * The answers' types assign to the SDK's own (`ChatCompletionToolMessageParam`,
 * `ResponseInputItem.FunctionCallOutput`): `pnpm lint` type-checks this file.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ToolqError } from '@toolq/shared';
import diagnostics from '@toolq/worker/diagnostics';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import type {
  ChatCompletionMessageParam,
  ChatCompletionTool,
  ChatCompletionToolMessageParam,
} from 'openai/resources/chat/completions';
import type { ResponseFunctionToolCall, ResponseInputItem } from 'openai/resources/responses/responses';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import type { chatBatchResponseSchema, responsesBatchResponseSchema } from '../src/http/responses.ts';
import { buildHttpServer, listen } from '../src/http/server.ts';
import type { ChatToolBatch, FunctionCallOutputItem, ResponsesToolBatch } from '../src/index.ts';
import { toChatToolMessage, toFunctionCallOutput } from '../src/openai/format.ts';

const fleet = useInProcessFleet({ workers: [{ tools: diagnostics }] });

/** The calls the scripted model makes: one that works, one whose tool fails, bad JSON, an unknown tool. */
const CALLS = [
  { name: 'diag_echo', arguments: '{"value":"hello from openai"}' },
  { name: 'diag_fail', arguments: '{"message":"the disk is full"}' },
  { name: 'diag_echo', arguments: '{"value": ' },
  { name: 'no_such_tool', arguments: '{}' },
];

/**
 * The scripted endpoint: Chat Completions answers tool_calls until the request carries tool
 * messages, then a final text; the Responses API answers function_call items until the input
 * carries function_call_output items. It keeps every request body it got.
 */
function scriptedOpenAI() {
  const received: { path: string; body: Record<string, unknown> }[] = [];
  const server = createServer((req, res) => {
    void readJson(req).then((body) => {
      received.push({ path: req.url ?? '', body });
      const send = (answer: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      };
      if (req.url === '/v1/chat/completions') {
        const messages = body.messages as { role: string }[];
        const answered = messages.some((m) => m.role === 'tool');
        const message = answered
          ? { role: 'assistant', content: 'All four calls answered.', refusal: null }
          : {
              role: 'assistant',
              content: null,
              refusal: null,
              tool_calls: CALLS.map((c, i) => ({ id: `call_${i}`, type: 'function', function: c })),
            };
        return send({
          id: `chatcmpl_${received.length}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: 'scripted-gpt',
          choices: [{ index: 0, message, finish_reason: answered ? 'stop' : 'tool_calls', logprobs: null }],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        });
      }
      if (req.url === '/v1/responses') {
        const input = body.input as { type?: string }[] | string;
        const answered = Array.isArray(input) && input.some((i) => i.type === 'function_call_output');
        const output = answered
          ? [
              {
                type: 'message',
                id: 'msg_1',
                role: 'assistant',
                status: 'completed',
                content: [{ type: 'output_text', text: 'Done.', annotations: [] }],
              },
            ]
          : [
              {
                type: 'reasoning',
                id: 'rs_1',
                summary: [],
              },
              ...CALLS.map((c, i) => ({
                type: 'function_call',
                id: `fc_${i}`,
                call_id: `call_r${i}`,
                status: 'completed',
                ...c,
              })),
            ];
        return send({
          id: `resp_${received.length}`,
          object: 'response',
          created_at: Math.floor(Date.now() / 1000),
          status: 'completed',
          model: 'scripted-gpt',
          output,
          parallel_tool_calls: true,
          tool_choice: 'auto',
          tools: [],
        });
      }
      res.writeHead(404).end();
    });
  });
  return { server, received };
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    req.on('end', () => resolve(text ? (JSON.parse(text) as Record<string, unknown>) : {}));
    req.on('error', reject);
  });
}

const TOOLS: ChatCompletionTool[] = [
  {
    type: 'function',
    function: { name: 'diag_echo', parameters: { type: 'object', properties: { value: {} } } },
  },
];

let endpoint: { server: Server; received: { path: string; body: Record<string, unknown> }[] };
let openai: OpenAI;
let toolq: { app: FastifyInstance; url: string };

beforeAll(async () => {
  endpoint = scriptedOpenAI();
  await new Promise<void>((resolve) => endpoint.server.listen(0, '127.0.0.1', resolve));
  const { port } = endpoint.server.address() as AddressInfo;
  openai = new OpenAI({ apiKey: 'test-key', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
  const app = buildHttpServer({ dispatcher: fleet.dispatcher });
  toolq = { app, url: await listen(app, { host: '127.0.0.1', port: 0 }) };
});

afterAll(async () => {
  await toolq?.app.close();
  await new Promise((resolve) => endpoint?.server.close(resolve));
});

async function postBatch(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${toolq.url}/v1/tool-batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** What every format's answers say, call by call: the first works, the rest are errors that say so. */
function expectAnswers(texts: string[]): void {
  expect(texts).toHaveLength(4);
  expect(texts[0]).toBe('hello from openai');
  expect(texts[1]).toBe('Error: the disk is full');
  expect(texts[2]).toMatch(
    /^Error: the arguments of this call are not valid JSON \(.+\), so diag_echo did not run\. Call it again/,
  );
  expect(texts[3]).toBe('Error: Unknown tool: no_such_tool');
}

describe('Chat Completions tool_calls', () => {
  it('run through the HTTP API and the Dispatcher, and their tool messages go back through the client', async () => {
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Use the tools.' }];
    const first = await openai.chat.completions.create({ model: 'scripted-gpt', messages, tools: TOOLS });
    const assistant = first.choices[0]?.message;
    const toolCalls = assistant?.tool_calls ?? [];
    expect(toolCalls.map((c) => c.id)).toEqual(['call_0', 'call_1', 'call_2', 'call_3']);

    // Over HTTP, the calls exactly as the client returned them.
    const { status, json } = await postBatch({ tool_calls: toolCalls, timeout_ms: 10_000 });
    expect(status, JSON.stringify(json)).toBe(200);
    const overHttp = json as z.infer<typeof chatBatchResponseSchema>;
    const fromHttp: ChatCompletionToolMessageParam[] = overHttp.tool_messages;
    expect(fromHttp.map((m) => [m.role, m.tool_call_id])).toEqual(toolCalls.map((c) => ['tool', c.id]));
    expectAnswers(overHttp.tool_messages.map((m) => m.content));
    expect(overHttp.stats.calls.map((c) => c.outcome)).toEqual([
      'ok',
      'error',
      'invalid_input',
      'unknown_tool',
    ]);

    // Embedded: the Dispatcher takes the SDK's tool_calls as they are.
    const batch: ChatToolBatch = await fleet.dispatcher.dispatchOpenAI(toolCalls, { timeoutMs: 10_000 });
    const toolMessages: ChatCompletionToolMessageParam[] = batch.toolMessages;
    expect(toolMessages).toEqual(overHttp.tool_messages);
    expect(batch.calls.map((c) => c.toolUseId)).toEqual(['call_0', 'call_1', 'call_2', 'call_3']);

    // Back to the model: it accepts them and answers.
    if (!assistant) throw new Error('no assistant message');
    const second = await openai.chat.completions.create({
      model: 'scripted-gpt',
      messages: [...messages, assistant, ...toolMessages],
      tools: TOOLS,
    });
    expect(second.choices[0]?.message.content).toBe('All four calls answered.');
    const sent = endpoint.received.at(-1)?.body.messages as { role: string; tool_call_id?: string }[];
    expect(sent.filter((m) => m.role === 'tool').map((m) => m.tool_call_id)).toEqual(
      toolCalls.map((c) => c.id),
    );
  });
});

describe('Responses API function_call items', () => {
  it('run through the HTTP API and the Dispatcher, and their outputs go back through the client', async () => {
    const first = await openai.responses.create({ model: 'scripted-gpt', input: 'Use the tools.' });
    const calls = first.output.filter((item) => item.type === 'function_call');
    expect(calls.map((c) => c.call_id)).toEqual(['call_r0', 'call_r1', 'call_r2', 'call_r3']);

    const { status, json } = await postBatch({ function_calls: calls });
    expect(status, JSON.stringify(json)).toBe(200);
    const overHttp = json as z.infer<typeof responsesBatchResponseSchema>;
    const fromHttp: ResponseInputItem.FunctionCallOutput[] = overHttp.function_call_outputs;
    expect(fromHttp.map((o) => o.call_id)).toEqual(calls.map((c) => c.call_id));
    expectAnswers(overHttp.function_call_outputs.map((o) => String(o.output)));

    // Embedded: the whole output will do (the reasoning item is not a call).
    const batch: ResponsesToolBatch = await fleet.dispatcher.dispatchResponses(first.output);
    const outputs: ResponseInputItem.FunctionCallOutput[] = batch.outputs;
    expect(outputs).toEqual(overHttp.function_call_outputs);

    const items: ResponseFunctionToolCall[] = calls;
    const second = await openai.responses.create({ model: 'scripted-gpt', input: [...items, ...outputs] });
    expect(second.output_text).toBe('Done.');
    const sent = endpoint.received.at(-1)?.body.input as {
      type: string;
      call_id?: string;
      output?: unknown;
    }[];
    expect(sent.filter((i) => i.type === 'function_call_output').map((i) => i.call_id)).toEqual(
      calls.map((c) => c.call_id),
    );
  });
});

describe('what is refused, and how', () => {
  const call = { id: 'call_x', type: 'function', function: { name: 'diag_echo', arguments: '{}' } };

  it.each([
    [
      'a custom tool call',
      { tool_calls: [{ id: 'c', type: 'custom', custom: { name: 'x', input: 'y' } }] },
      /tool_calls\.0\.type: only function tool calls can run here, not "custom"/,
    ],
    [
      'arguments that are not a string',
      { tool_calls: [{ ...call, function: { name: 'diag_echo', arguments: {} } }] },
      /tool_calls\.0\.function\.arguments/,
    ],
    ['two formats at once', { tool_calls: [call], tool_uses: [] }, /give exactly one of tool_uses/],
    ['no calls at all', {}, /give exactly one of tool_uses/],
    ['a batch_id', { tool_calls: [call], batch_id: 'mine' }, /batch_id names batches of tool_uses only/],
    ['duplicate ids', { tool_calls: [call, call] }, /tool_calls: ids must be unique/],
    [
      'a message item among function_calls',
      { function_calls: [{ type: 'message', role: 'assistant', content: [] }] },
      /function_calls\.0\.type: only function_call items can run here, not "message"/,
    ],
  ])('over HTTP: %s is a 400 naming it', async (_what, body, message) => {
    const { status, json } = await postBatch(body);
    expect(status).toBe(400);
    expect((json.error as { message: string }).message).toMatch(message);
  });

  it('the Dispatcher checks its calls and options like dispatch()', async () => {
    const refusal = async (work: Promise<unknown>) => {
      const err = await work.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ToolqError);
      return err as ToolqError;
    };
    const d = fleet.dispatcher;
    const typo = await refusal(d.dispatchOpenAI([call], { timeoutMS: 5 } as never));
    expect(typo.code).toBe('INVALID_INPUT');
    expect(typo.message).toMatch(/"timeoutMS" is not an option \(did you mean timeoutMs\?\)/);
    expect((await refusal(d.dispatchOpenAI([call], { batchName: 'b1' }))).message).toMatch(
      /batchName is not supported here/,
    );
    expect((await refusal(d.dispatchOpenAI([call, call]))).message).toMatch(
      /toolCalls\.1\.id: duplicate id call_x/,
    );
    expect((await refusal(d.dispatchOpenAI([{ id: 'c', type: 'custom' }]))).message).toMatch(
      /toolCalls\.0\.type: only function tool calls can run here/,
    );
    const bad = { type: 'function_call', call_id: 'r', name: 'diag_echo' } as never;
    expect((await refusal(d.dispatchResponses([bad]))).message).toMatch(/items\.0\.arguments/);
  });
});

describe('answers in the OpenAI formats', () => {
  const png = { type: 'base64' as const, media_type: 'image/png' as const, data: 'iVBORw0KGgo=' };

  it('an image goes into a Responses output as input_image, and is named in a chat tool message', () => {
    const answer = {
      id: 'c1',
      content: [
        { type: 'text' as const, text: 'a chart' },
        { type: 'image' as const, source: png },
      ],
      isError: false,
    };
    const output: FunctionCallOutputItem = toFunctionCallOutput(answer);
    expect(output.output).toEqual([
      { type: 'input_text', text: 'a chart' },
      { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=' },
    ]);
    const typed: ResponseInputItem.FunctionCallOutput = output;
    expect(typed.call_id).toBe('c1');
    expect(toChatToolMessage(answer).content).toBe(
      'a chart\n[the tool returned an image (image/png) that this message cannot carry]',
    );
  });

  it('an error always starts with Error:, once', () => {
    const error = (content: string) => toChatToolMessage({ id: 'c', content, isError: true }).content;
    expect(error('Tool diag_sleep timed out after 1s')).toBe('Error: Tool diag_sleep timed out after 1s');
    expect(error('Error: no')).toBe('Error: no');
    expect(toFunctionCallOutput({ id: 'c', content: 'fine', isError: false }).output).toBe('fine');
  });
});
