import Anthropic, { APIError } from '@anthropic-ai/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test-support/wait-for.ts';
import {
  advisorIteration,
  executorIteration,
  type ScriptedModel,
  type ScriptedResponse,
  type ScriptedTurn,
  type StopReason,
  sequenceScript,
  startScriptedModel,
  text,
  toolTurnsScript,
  toolUse,
} from '../src/index.ts';
import { toolUseIdGenerator } from '../src/script.ts';

const MODEL = 'claude-sonnet-4-6';
const TOOLS: Anthropic.Messages.Tool[] = [
  {
    name: 'get_funding_data',
    description: 'Get funding history for a company.',
    input_schema: {
      type: 'object',
      properties: { company_name: { type: 'string' } },
      required: ['company_name'],
    },
  },
  {
    name: 'analyze_app_store',
    description: 'Analyze App Store reviews.',
    input_schema: { type: 'object', properties: { app_name: { type: 'string' } }, required: ['app_name'] },
  },
];

const models: ScriptedModel[] = [];
afterEach(async () => {
  await Promise.all(models.splice(0).map((m) => m.close()));
});

async function start(script: Parameters<typeof startScriptedModel>[0]) {
  const model = await startScriptedModel(script);
  models.push(model);
  const client = new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 });
  return { model, client };
}

/** Calls the server with the SDK and returns the API error it raised. */
async function apiError(promise: Promise<unknown>): Promise<APIError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof APIError) return error;
    throw error;
  }
  throw new Error('expected an API error');
}

function errorMessage(error: APIError): string {
  const body = error.error as { error?: { message?: string } } | undefined;
  return body?.error?.message ?? '';
}

const twoCompanies = toolTurnsScript([
  {
    text: 'Let me look both companies up.',
    calls: [
      { name: 'get_funding_data', input: { company_name: 'Jasper' } },
      {
        name: 'analyze_app_store',
        input: { app_name: 'Copy.ai', options: { depth: 'full', locales: ['en', 'de'] } },
      },
    ],
  },
]);

function toolResultMessage(response: Anthropic.Messages.Message): Anthropic.Messages.MessageParam {
  const calls = response.content.filter((b): b is Anthropic.Messages.ToolUseBlock => b.type === 'tool_use');
  return {
    role: 'user',
    content: calls.map((call, i) =>
      i === 0
        ? { type: 'tool_result', tool_use_id: call.id, content: JSON.stringify({ total_funding: '$125M' }) }
        : {
            type: 'tool_result',
            tool_use_id: call.id,
            content: 'Tool analyze_app_store timed out after 5s',
            is_error: true,
          },
    ),
  };
}

describe('scripted model, JSON', () => {
  it('runs a two-turn tool conversation and answers from the tool results it received', async () => {
    const { model, client } = await start(twoCompanies);
    const first: Anthropic.Messages.MessageParam = { role: 'user', content: 'Compare Jasper and Copy.ai' };
    const r1 = await client.messages.create({
      model: MODEL,
      max_tokens: 1024,
      tools: TOOLS,
      messages: [first],
    });
    expect(r1.stop_reason).toBe('tool_use');
    expect(r1.id).toBe('msg_scripted_0001');
    expect(r1.model).toBe(MODEL);
    expect(r1.content.map((b) => b.type)).toEqual(['text', 'tool_use', 'tool_use']);
    const calls = r1.content.filter((b) => b.type === 'tool_use');
    expect(calls.map((c) => c.id)).toEqual(['toolu_0001', 'toolu_0002']);
    expect(calls[1]?.input).toEqual({
      app_name: 'Copy.ai',
      options: { depth: 'full', locales: ['en', 'de'] },
    });
    expect(r1.usage.input_tokens).toBeGreaterThan(0);
    expect(r1.usage.output_tokens).toBeGreaterThan(0);

    const r2 = await client.messages.create({
      model: MODEL,
      max_tokens: 1024,
      tools: TOOLS,
      messages: [first, { role: 'assistant', content: r1.content }, toolResultMessage(r1)],
    });
    expect(r2.stop_reason).toBe('end_turn');
    const answer = r2.content[0]?.type === 'text' ? r2.content[0].text : '';
    expect(answer).toContain('I received 2 tool results (1 error).');
    expect(answer).toContain('get_funding_data {"company_name":"Jasper"} -> {"total_funding":"$125M"}');
    expect(answer).toContain('ERROR: Tool analyze_app_store timed out after 5s');
    expect(answer).toContain('Failed: analyze_app_store (toolu_0002).');

    expect(model.requests.map((r) => [r.path, r.status])).toEqual([
      ['/v1/messages', 200],
      ['/v1/messages', 200],
    ]);
    expect(model.requests[1]?.headers['user-agent']).toMatch(/^Anthropic\/JS /);
    expect(model.requests[1]?.headers['anthropic-version']).toBeDefined();
    expect(model.requests[1]?.response).toEqual(JSON.parse(JSON.stringify(r2)));
  });

  it('gives the script the request, the turn and the last tool results', async () => {
    const seen: Array<{ turn: number; ids: string[]; names: Array<string | undefined>; text: string }> = [];
    const { client } = await start((ctx) => {
      seen.push({
        turn: ctx.turn,
        ids: ctx.toolResults.map((r) => r.toolUseId),
        names: ctx.toolResults.map((r) => r.name),
        text: ctx.lastUserText,
      });
      return ctx.turn === 0
        ? { content: [toolUse('get_funding_data', { company_name: 'A' }, { id: 'toolu_a' })] }
        : { content: [text(`done: ${ctx.toolResults[0]?.content}`)] };
    });
    const r1 = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: TOOLS,
      messages: [{ role: 'user', content: 'go' }],
    });
    const r2 = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: TOOLS,
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: r1.content },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_a', content: [{ type: 'text', text: 'funded' }] },
            { type: 'text', text: 'and now?' },
          ],
        },
      ],
    });
    expect(r2.content).toEqual([{ type: 'text', text: 'done: funded' }]);
    expect(seen).toEqual([
      { turn: 0, ids: [], names: [], text: 'go' },
      { turn: 1, ids: ['toolu_a'], names: ['get_funding_data'], text: 'and now?' },
    ]);
  });

  it('waits for the sum of the block delays before answering', async () => {
    const { client } = await start(() => ({ content: [text('a', 150), text('b', 150)] }));
    const t0 = performance.now();
    await client.messages.create({
      model: MODEL,
      max_tokens: 10,
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('generates tool_use ids deterministically', () => {
    const next = toolUseIdGenerator();
    expect([next(), next(), next()]).toEqual(['toolu_0001', 'toolu_0002', 'toolu_0003']);
    expect(toolUseIdGenerator('srvtoolu_', 41)()).toBe('srvtoolu_0041');
  });
});

describe('scripted model, streaming', () => {
  it('emits the real event sequence and input_json_delta chunks that re-assemble the input', async () => {
    const { client } = await start(
      toolTurnsScript([
        {
          thinking: 'Two lookups, independent, so in parallel.',
          text: 'Looking these up.',
          calls: [
            { name: 'get_funding_data', input: { company_name: 'Jasper' } },
            { name: 'analyze_app_store', input: { app_name: 'Copy.ai', options: { depth: 'full' } } },
          ],
        },
      ]),
    );
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 1024,
      tools: TOOLS,
      messages: [{ role: 'user', content: 'Compare' }],
    });
    const events: Anthropic.Messages.RawMessageStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const message = await stream.finalMessage();

    const shape = events.map((e) =>
      e.type === 'content_block_delta'
        ? `delta:${e.delta.type}`
        : e.type === 'content_block_start'
          ? `start:${e.content_block.type}`
          : e.type,
    );
    const compact = shape.filter((s, i) => s !== shape[i - 1]);
    expect(compact).toEqual([
      'message_start',
      'start:thinking',
      'delta:thinking_delta',
      'delta:signature_delta',
      'content_block_stop',
      'start:text',
      'delta:text_delta',
      'content_block_stop',
      'start:tool_use',
      'delta:input_json_delta',
      'content_block_stop',
      'start:tool_use',
      'delta:input_json_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);

    const calls = message.content.filter((b) => b.type === 'tool_use');
    for (const call of calls) {
      const index = message.content.indexOf(call);
      const chunks = events.flatMap((e) =>
        e.type === 'content_block_delta' && e.index === index && e.delta.type === 'input_json_delta'
          ? [e.delta.partial_json]
          : [],
      );
      expect(chunks[0]).toBe('');
      expect(chunks.filter((c) => c !== '').length).toBeGreaterThanOrEqual(2);
      expect(JSON.parse(chunks.join(''))).toEqual(call.input);
    }
    expect(calls.map((c) => [c.id, c.input])).toEqual([
      ['toolu_0001', { company_name: 'Jasper' }],
      ['toolu_0002', { app_name: 'Copy.ai', options: { depth: 'full' } }],
    ]);
    expect(message.content[0]).toEqual({
      type: 'thinking',
      thinking: 'Two lookups, independent, so in parallel.',
      signature: 'scripted-signature-0',
    });
    expect(message.content[1]).toEqual({ type: 'text', text: 'Looking these up.' });
    expect(message.stop_reason).toBe('tool_use');
    expect(message.usage.output_tokens).toBeGreaterThan(1);
  });

  it('streams the same message it would answer in JSON', async () => {
    const turn: ScriptedResponse = {
      content: [
        text('Checking.'),
        toolUse('get_funding_data', { company_name: 'Jasper' }, { id: 'toolu_x' }),
      ],
      usage: { input_tokens: 120, output_tokens: 33 },
    };
    const { client } = await start(() => turn);
    const params = {
      model: MODEL,
      max_tokens: 100,
      tools: TOOLS,
      messages: [{ role: 'user' as const, content: 'x' }],
    };
    const json = await client.messages.create(params);
    const streamed = await client.messages.stream(params).finalMessage();
    // parsed_output is the SDK's own addition to a streamed message.
    const { parsed_output: _sdkOnly, ...streamedWire } = streamed as typeof streamed & {
      parsed_output?: unknown;
    };
    expect({ ...streamedWire, id: '' }).toEqual({ ...JSON.parse(JSON.stringify(json)), id: '' });
    expect(streamed.usage).toMatchObject({ input_tokens: 120, output_tokens: 33 });
  });

  it('waits before each block as scripted, observable between content_block_start events', async () => {
    const { client } = await start(() => ({
      content: [
        toolUse('get_funding_data', { company_name: 'A' }),
        toolUse('get_funding_data', { company_name: 'B' }, { delayMs: 250 }),
        text('done', 250),
      ],
    }));
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 100,
      tools: TOOLS,
      messages: [{ role: 'user', content: 'x' }],
    });
    const stops: number[] = [];
    const starts: number[] = [];
    for await (const event of stream) {
      if (event.type === 'content_block_start') starts.push(performance.now());
      if (event.type === 'content_block_stop') stops.push(performance.now());
    }
    expect(starts).toHaveLength(3);
    const [s0 = 0, s1 = 0, s2 = 0] = starts;
    expect(s1 - s0).toBeGreaterThanOrEqual(230);
    expect(s2 - s1).toBeGreaterThanOrEqual(230);
    // The first call is complete (content_block_stop) long before the turn ends.
    expect(s2 - (stops[0] ?? 0)).toBeGreaterThanOrEqual(460);
  });

  it('cuts a tool_use mid-input on max_tokens: partial JSON streamed, empty input in JSON', async () => {
    const turn: ScriptedResponse = {
      content: [
        text('Writing the file.'),
        toolUse(
          'get_funding_data',
          { company_name: 'A very long company name' },
          { id: 'toolu_cut', truncateInputAt: 20 },
        ),
      ],
      stopReason: 'max_tokens',
    };
    const { client } = await start(() => turn);
    const params = {
      model: MODEL,
      max_tokens: 30,
      tools: TOOLS,
      messages: [{ role: 'user' as const, content: 'x' }],
    };
    const json = await client.messages.create(params);
    expect(json.stop_reason).toBe('max_tokens');
    expect(json.content[1]).toEqual({
      type: 'tool_use',
      id: 'toolu_cut',
      name: 'get_funding_data',
      input: {},
      caller: { type: 'direct' },
    });

    const stream = client.messages.stream(params);
    let partial = '';
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta')
        partial += event.delta.partial_json;
    }
    expect(partial).toBe('{"company_name":"A v');
    expect(() => JSON.parse(partial)).toThrow();
    expect((await stream.finalMessage()).stop_reason).toBe('max_tokens');
  });

  it('sends an SSE error event mid-stream when scripted', async () => {
    const { client } = await start(() => ({
      content: [text('partial'), text('never sent')],
      streamError: { afterBlocks: 1, type: 'overloaded_error', message: 'Overloaded' },
    }));
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 10,
      messages: [{ role: 'user', content: 'x' }],
    });
    const error = await apiError(stream.finalMessage());
    expect(errorMessage(error)).toBe('Overloaded');
  });
});

describe('stop reasons', () => {
  const cases: Array<[StopReason, ScriptedTurn]> = [
    ['end_turn', { content: [text('Done.')] }],
    ['tool_use', { content: [toolUse('get_funding_data', { company_name: 'A' })] }],
    ['max_tokens', { content: [text('Trunc')], stopReason: 'max_tokens' }],
    ['stop_sequence', { content: [text('Up to the')], stopReason: 'stop_sequence' }],
    ['pause_turn', { content: [text('Searching…')], stopReason: 'pause_turn' }],
    ['refusal', { content: [], stopReason: 'refusal' }],
  ];

  for (const stream of [false, true]) {
    it(`returns each stop reason (${stream ? 'streaming' : 'JSON'})`, async () => {
      const { client } = await start(sequenceScript(cases.map(([, turn]) => turn)));
      for (const [reason] of cases) {
        const params = {
          model: MODEL,
          max_tokens: 50,
          tools: TOOLS,
          stop_sequences: ['END'],
          messages: [{ role: 'user' as const, content: 'x' }],
        };
        const message = stream
          ? await client.messages.stream(params).finalMessage()
          : await client.messages.create(params);
        expect(message.stop_reason).toBe(reason);
        expect(message.stop_sequence).toBe(reason === 'stop_sequence' ? 'END' : null);
        expect(message.stop_details).toEqual(
          reason === 'refusal' ? { type: 'refusal', category: null, explanation: null } : null,
        );
      }
    });
  }
});

describe('request validation like the real API', () => {
  const assistant: Anthropic.Messages.MessageParam = {
    role: 'assistant',
    content: [
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'toolu_a', name: 'get_funding_data', input: { company_name: 'A' } },
      { type: 'tool_use', id: 'toolu_b', name: 'get_funding_data', input: { company_name: 'B' } },
    ],
  };
  const ask: Anthropic.Messages.MessageParam = { role: 'user', content: 'Compare A and B' };
  const result = (id: string): Anthropic.Messages.ToolResultBlockParam => ({
    type: 'tool_result',
    tool_use_id: id,
    content: 'ok',
  });

  async function rejected(messages: Anthropic.Messages.MessageParam[]) {
    const { model, client } = await start(() => ({ content: [text('unreachable')] }));
    const error = await apiError(
      client.messages.create({ model: MODEL, max_tokens: 10, tools: TOOLS, messages }),
    );
    expect(error.status).toBe(400);
    expect(error.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(model.requests[0]?.status).toBe(400);
    return errorMessage(error);
  }

  it('accepts all results in one user message, tool results first', async () => {
    const { client } = await start(() => ({ content: [text('fine')] }));
    const ok = await client.messages.create({
      model: MODEL,
      max_tokens: 10,
      tools: TOOLS,
      messages: [
        ask,
        assistant,
        { role: 'user', content: [result('toolu_b'), result('toolu_a'), { type: 'text', text: 'go on' }] },
      ],
    });
    expect(ok.content).toEqual([{ type: 'text', text: 'fine' }]);
  });

  it('rejects a tool_use without a tool_result', async () => {
    expect(await rejected([ask, assistant, { role: 'user', content: [result('toolu_a')] }])).toBe(
      'messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_b. ' +
        'Each `tool_use` block must have a corresponding `tool_result` block in the next message.',
    );
    expect(await rejected([ask, assistant])).toContain('immediately after: toolu_a, toolu_b.');
  });

  it('rejects results split across two user messages', async () => {
    const message = await rejected([
      ask,
      assistant,
      { role: 'user', content: [result('toolu_a')] },
      { role: 'user', content: [result('toolu_b')] },
    ]);
    expect(message).toMatch(
      /^messages\.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_b\./,
    );
  });

  it('rejects an unknown tool_use_id', async () => {
    const single: Anthropic.Messages.MessageParam = {
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'toolu_a', name: 'get_funding_data', input: { company_name: 'A' } }],
    };
    expect(
      await rejected([ask, single, { role: 'user', content: [result('toolu_a'), result('toolu_zzz')] }]),
    ).toBe(
      'messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_zzz. ' +
        'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.',
    );
    expect(await rejected([ask, single, { role: 'user', content: [result('toolu_wrong')] }])).toMatch(
      /^messages\.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_a\./,
    );
  });

  it('rejects duplicate results and text before results', async () => {
    expect(
      await rejected([
        ask,
        assistant,
        { role: 'user', content: [result('toolu_a'), result('toolu_b'), result('toolu_a')] },
      ]),
    ).toBe(
      'messages.2.content.2: each tool_use must have a single result. Found multiple `tool_result` blocks with id: toolu_a',
    );
    expect(
      await rejected([
        ask,
        assistant,
        { role: 'user', content: [{ type: 'text', text: 'here' }, result('toolu_a'), result('toolu_b')] },
      ]),
    ).toMatch(/^messages\.2\.content\.1: `tool_result` blocks must come first/);
  });

  it('rejects malformed bodies', async () => {
    const { model } = await start(() => ({ content: [text('unreachable')] }));
    const post = async (body: string) => {
      const res = await fetch(`${model.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      return {
        status: res.status,
        body: (await res.json()) as { type: string; error: { type: string; message: string } },
      };
    };
    const notJson = await post('{"model": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.type).toBe('error');
    expect(notJson.body.error.type).toBe('invalid_request_error');
    expect(notJson.body.error.message).toMatch(/not valid JSON/);
    const messages = [{ role: 'user', content: 'x' }];
    expect((await post(JSON.stringify({ max_tokens: 5, messages }))).body.error.message).toBe(
      'model: Field required',
    );
    expect((await post(JSON.stringify({ model: MODEL, max_tokens: 5 }))).body.error.message).toBe(
      'messages: Field required',
    );
    expect((await post(JSON.stringify({ model: MODEL, messages }))).body.error.message).toBe(
      'max_tokens: Field required',
    );
    expect((await post(JSON.stringify({ model: MODEL, max_tokens: 5, messages: [] }))).status).toBe(400);
    const notFound = await fetch(`${model.url}/v1/complete`, { method: 'POST', body: '{}' });
    expect(notFound.status).toBe(404);
    expect(model.requests).toHaveLength(6);
    expect(model.requests.every((r) => r.status >= 400)).toBe(true);
  });
});

describe('errors and server tools', () => {
  it('returns scripted HTTP errors with the API error body, and the SDK retries when told to', async () => {
    const { model } = await start(
      sequenceScript([
        {
          error: {
            status: 529,
            type: 'overloaded_error',
            message: 'Overloaded',
            headers: { 'x-should-retry': 'false' },
          },
        },
        {
          error: {
            status: 429,
            type: 'rate_limit_error',
            message: 'Slow down',
            headers: { 'retry-after-ms': '10' },
          },
        },
        { content: [text('after the retry')] },
      ]),
    );
    const client = new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 2 });
    const params = { model: MODEL, max_tokens: 10, messages: [{ role: 'user' as const, content: 'x' }] };
    const overloaded = await apiError(client.messages.create(params));
    expect(overloaded.status).toBe(529);
    expect(overloaded.error).toMatchObject({
      type: 'error',
      error: { type: 'overloaded_error', message: 'Overloaded' },
    });
    const retried = await client.messages.create(params);
    expect(retried.content).toEqual([{ type: 'text', text: 'after the retry' }]);
    expect(model.requests.map((r) => r.status)).toEqual([529, 429, 200]);
  });

  it('answers 500 when the script throws', async () => {
    const { client } = await start(() => {
      throw new Error('no turn for this');
    });
    const error = await apiError(
      client.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(error.status).toBe(500);
    expect(errorMessage(error)).toContain('no turn for this');
  });

  it('passes the advisor tool through and tells executor and advisor usage apart', async () => {
    const advisorTool: Anthropic.Beta.BetaAdvisorTool20260301 = {
      type: 'advisor_20260301',
      name: 'advisor',
      model: 'claude-opus-4-6',
    };
    const { model, client } = await start(
      toolTurnsScript([
        {
          advice: 'Fetch funding first, in parallel.',
          calls: [{ name: 'get_funding_data', input: { company_name: 'A' } }],
        },
      ]),
    );
    const params = {
      model: MODEL,
      max_tokens: 500,
      betas: ['advisor-tool-2026-03-01'],
      tools: [advisorTool, ...TOOLS],
      messages: [{ role: 'user' as const, content: 'Plan and go' }],
    };
    const json = await client.beta.messages.create(params);
    expect(json.content.map((b) => b.type)).toEqual(['server_tool_use', 'advisor_tool_result', 'tool_use']);
    expect(json.content[1]).toEqual({
      type: 'advisor_tool_result',
      tool_use_id: 'srvtoolu_advisor_1',
      content: { type: 'advisor_result', text: 'Fetch funding first, in parallel.', stop_reason: 'end_turn' },
    });
    const iterations = json.usage.iterations ?? [];
    expect(iterations.map((it) => [it.type, 'model' in it ? it.model : null])).toEqual([
      ['message', MODEL],
      ['advisor_message', 'claude-opus-4-6'],
      ['message', MODEL],
    ]);
    const executor = iterations.filter((it) => it.type === 'message');
    expect(json.usage.output_tokens).toBe(executor.reduce((n, it) => n + it.output_tokens, 0));
    expect(model.requests[0]?.path).toBe('/v1/messages');
    expect(model.requests[0]?.betas).toEqual(['advisor-tool-2026-03-01']);

    const streamed = await client.beta.messages.stream(params).finalMessage();
    expect(streamed.content.map((b) => b.type)).toEqual([
      'server_tool_use',
      'advisor_tool_result',
      'tool_use',
    ]);
    expect(streamed.usage.iterations).toEqual(iterations);

    // Without the beta header the real API does not know the tool.
    const { betas: _omitted, ...withoutBeta } = params;
    const error = await apiError(client.beta.messages.create(withoutBeta));
    expect(error.status).toBe(400);
    expect(errorMessage(error)).toContain('advisor-tool-2026-03-01');
  });

  it('reports scripted usage iterations as given', async () => {
    const iterations = [executorIteration(100, 10, MODEL), advisorIteration('claude-opus-4-6', 100, 300)];
    const { client } = await start(() => ({ content: [text('ok')], usage: { iterations } }));
    const message = await client.beta.messages.create({
      model: MODEL,
      max_tokens: 10,
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(message.usage).toMatchObject({ input_tokens: 100, output_tokens: 10, iterations });
  });

  it('closes promptly with kept-alive connections and a stream in flight', async () => {
    const model = await startScriptedModel(() => ({ content: [text('slow', 10_000)] }));
    const client = new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 });
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 5,
      messages: [{ role: 'user', content: 'x' }],
    });
    const settled = stream.finalMessage().then(
      () => 'resolved',
      () => 'rejected',
    );
    await waitFor('the request to be in flight', () => model.requests.length > 0, { intervalMs: 10 });
    const t0 = performance.now();
    await model.close();
    // Promptly: without waiting for the 10 s stream to end.
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(await settled).toBe('rejected');
  });
});
