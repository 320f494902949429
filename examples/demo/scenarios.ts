/**
 * The seed's scenarios: what the user asks, which demo tools the model gets, and how the offline
 * scripted model plays each one. The scripted model calls tools the way the seed teaches (all
 * independent calls in one turn; a dependency chain over two turns) and writes its final answer
 * from the tool results it actually received.
 */
import { type ReceivedToolResult, type Script, text, toolTurnsScript, toolUse } from '@toolq/scripted-model';
import { COMPETITORS, competitorsAnswer, parseResult } from './answers.ts';
import { FILES_TOOLS, filesScript } from './mcp-files.ts';

export const SCENARIO_NAMES = ['competitors', 'city', 'stocks', 'order', 'payment', 'files'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export interface Scenario {
  name: ScenarioName;
  title: string;
  system: string;
  prompt: string;
  tools: string[];
  /** The offline model. */
  script: Script;
  /** Calls that wait for a person: the demo approves them itself after this long (ms). */
  autoApproveAfterMs?: number;
  /** Where the tools come from: the demo tool module (default) or MCP servers (`--mcp`). */
  source?: 'demo' | 'mcp-files';
}

/** Streaming: the pause before each tool_use block, as a model writing its calls one by one. */
const BLOCK_MS = 30;

const competitors: Scenario = {
  name: 'competitors',
  title: 'Competitor analysis of three AI writing tools',
  system:
    'You are a professional market analyst skilled at gathering and analyzing competitor data from multiple dimensions.',
  prompt:
    'Please analyze three AI writing tools: Jasper (jasper.ai), Copy.ai (copy.ai), Writesonic (writesonic.com). ' +
    'For each company: fetch website info, get funding data, and analyze App Store reviews. ' +
    'Then provide a comprehensive comparison report.',
  tools: ['fetch_company_website', 'get_funding_data', 'analyze_app_store'],
  script: toolTurnsScript({
    turns: [
      {
        text: 'I will gather all nine data points at once: website, funding and App Store reviews for each company.',
        calls: COMPETITORS.flatMap((c) => [
          { name: 'fetch_company_website', input: { url: c.url }, delayMs: BLOCK_MS },
          { name: 'get_funding_data', input: { company_name: c.name }, delayMs: BLOCK_MS },
          { name: 'analyze_app_store', input: { app_name: c.name }, delayMs: BLOCK_MS },
        ]),
      },
    ],
    final: (results) => competitorsAnswer(results),
  }),
};

const city: Scenario = {
  name: 'city',
  title: 'A day in Lisbon: weather, restaurants and events',
  system: 'You are a helpful travel concierge.',
  prompt:
    'Check the weather for tomorrow in Lisbon, recommend three restaurants, and list cultural events happening tomorrow.',
  tools: ['get_weather', 'find_restaurants', 'list_events'],
  script: toolTurnsScript({
    turns: [
      {
        text: 'Checking the weather, restaurants and events at the same time.',
        calls: [
          { name: 'get_weather', input: { city: 'Lisbon', date: 'tomorrow' }, delayMs: BLOCK_MS },
          { name: 'find_restaurants', input: { city: 'Lisbon', count: 3 }, delayMs: BLOCK_MS },
          { name: 'list_events', input: { city: 'Lisbon', date: 'tomorrow' }, delayMs: BLOCK_MS },
        ],
      },
    ],
    final: (results) => {
      const get = (name: string) => parseResult(results.find((r) => r.name === name));
      const w = get('get_weather');
      const food =
        (get('find_restaurants')?.restaurants as { name: string; rating: number }[] | undefined) ?? [];
      const events = (get('list_events')?.events as { name: string; time: string }[] | undefined) ?? [];
      return [
        w ? `Tomorrow in Lisbon: ${w.forecast}, ${w.low_c}–${w.high_c} °C.` : 'The forecast was unavailable.',
        w && Number(w.precipitation_chance) > 0.4 ? 'Take an umbrella.' : 'A light jacket is enough.',
        `Restaurants: ${food.map((r) => `${r.name} (${r.rating}★)`).join(', ') || 'none found'}.`,
        `Events: ${events.map((e) => `${e.name} at ${e.time}`).join('; ') || 'none found'}.`,
      ].join('\n');
    },
  }),
};

const SYMBOLS = ['AAPL', 'MSFT', 'NVDA'];

const stocks: Scenario = {
  name: 'stocks',
  title: 'Three stocks: prices and company facts',
  system: 'You are a concise financial assistant. You do not give investment advice.',
  prompt: 'Give me the current price and basic company facts for AAPL, MSFT and NVDA.',
  tools: ['get_stock_price', 'get_company_info'],
  script: toolTurnsScript({
    turns: [
      {
        text: 'Fetching prices and company facts for all three tickers in parallel.',
        calls: SYMBOLS.flatMap((symbol) => [
          { name: 'get_stock_price', input: { symbol }, delayMs: BLOCK_MS },
          { name: 'get_company_info', input: { symbol }, delayMs: BLOCK_MS },
        ]),
      },
    ],
    final: (results) =>
      SYMBOLS.map((symbol) => {
        const of = (name: string) =>
          parseResult(
            results.find((r) => r.name === name && (r.input as { symbol?: string }).symbol === symbol),
          );
        const p = of('get_stock_price');
        const i = of('get_company_info');
        const price = p
          ? `$${p.price} (${Number(p.change_pct) >= 0 ? '+' : ''}${p.change_pct}%)`
          : 'price n/a';
        const info = i ? `founded ${i.founded}, ${i.employees} employees` : 'facts n/a';
        return `${symbol}: ${price}; ${info}`;
      }).join('\n'),
  }),
};

const ORDER = { product_id: 'SKU-2002', quantity: 2, user_id: 'user_42' };
const EMAIL = 'ada@example.com';

/** Two tool turns: create_order alone, then payment and confirmation together with its order_id. */
const orderScript: Script = (ctx) => {
  if (ctx.turn === 0) {
    return {
      content: [
        text('First I create the order; payment and confirmation need its id.'),
        toolUse('create_order', ORDER, { delayMs: BLOCK_MS }),
      ],
    };
  }
  if (ctx.turn === 1) {
    const created = parseResult(ctx.toolResults.find((r) => r.name === 'create_order'));
    if (!created?.order_id) {
      return {
        content: [text(`I could not create the order: ${ctx.toolResults[0]?.content ?? 'no result'}`)],
      };
    }
    const order_id = String(created.order_id);
    return {
      content: [
        text(`Order ${order_id} created. Charging the card and sending the confirmation in parallel.`),
        toolUse('process_payment', { order_id, payment_method: 'credit_card' }, { delayMs: BLOCK_MS }),
        toolUse('send_confirmation', { order_id, email: EMAIL }, { delayMs: BLOCK_MS }),
      ],
    };
  }
  const all: ReceivedToolResult[] = ctx.toolResults;
  const failed = all.filter((r) => r.isError);
  const paid = parseResult(all.find((r) => r.name === 'process_payment'));
  const mail = parseResult(all.find((r) => r.name === 'send_confirmation'));
  return {
    content: [
      text(
        failed.length > 0
          ? `The order needs attention: ${failed.map((r) => `${r.name}: ${r.content}`).join('; ')}`
          : `Done: payment ${paid?.payment_id} is ${paid?.status}, and confirmation ${mail?.message_id} was sent to ${mail?.sent_to}.`,
      ),
    ],
  };
};

const order: Scenario = {
  name: 'order',
  title: 'An order chain: create, then pay and confirm in parallel',
  system:
    'You are an order-processing assistant. Respect tool dependencies; run independent calls in parallel.',
  prompt: `Order 2 units of SKU-2002 for user user_42, pay by credit card and send the confirmation to ${EMAIL}.`,
  tools: ['create_order', 'process_payment', 'send_confirmation'],
  script: orderScript,
};

const payment: Scenario = {
  name: 'payment',
  title: 'A supplier payment that waits for a person to approve it',
  system: 'You are a finance assistant. Run independent calls in parallel.',
  prompt:
    'Pay invoice INV-2026-117 of 2400 EUR to Initech GmbH from the operating account, and tell me the balance.',
  tools: ['check_balance', 'transfer_funds'],
  autoApproveAfterMs: 1_500,
  script: toolTurnsScript({
    turns: [
      {
        text: 'Checking the balance and sending the transfer (it needs approval above 1000 EUR).',
        calls: [
          { name: 'check_balance', input: { account: 'operating' }, delayMs: BLOCK_MS },
          {
            name: 'transfer_funds',
            input: { to: 'Initech GmbH', amount_eur: 2_400, reference: 'INV-2026-117' },
            delayMs: BLOCK_MS,
          },
        ],
      },
    ],
    final: (results) => {
      const balance = parseResult(results.find((r) => r.name === 'check_balance'));
      const transfer = results.find((r) => r.name === 'transfer_funds');
      const sent = parseResult(transfer);
      return [
        transfer?.isError
          ? `The transfer was not made: ${transfer.content}`
          : `Transfer ${sent?.transfer_id} of ${sent?.amount_eur} EUR to ${sent?.to} was approved and sent.`,
        `Operating account balance: ${balance?.balance_eur ?? 'n/a'} EUR.`,
      ].join('\n');
    },
  }),
};

const files: Scenario = {
  name: 'files',
  title: 'Meeting notes through a real MCP server (filesystem) on the fleet',
  system:
    'You are an assistant with access to a folder of files through MCP tools. Run independent calls in parallel.',
  prompt:
    'Read the meeting notes in your folder and write a summary of their decisions and actions to summary.md.',
  tools: FILES_TOOLS,
  script: filesScript,
  source: 'mcp-files',
};

export const SCENARIOS: Record<ScenarioName, Scenario> = { competitors, city, stocks, order, payment, files };

export function isScenarioName(value: string): value is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(value);
}
