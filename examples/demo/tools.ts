/**
 * The seed's demo tools (`pnpm worker --tools demo`): competitor analysis, a day in a city, stocks,
 * and an order chain. Data is simulated and deterministic; each call sleeps a short, input-dependent
 * time so that running calls in parallel visibly beats running them one after another. Descriptions
 * tell the model what may run in parallel and what depends on what, as the seed teaches.
 */
import { createHash } from 'node:crypto';
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

/** A stable number in [0, 1) for a key, so latency and data do not change between runs. */
function unit(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}

function between(key: string, min: number, max: number): number {
  return Math.round(min + unit(key) * (max - min));
}

/** Simulated network latency that stops at once when the call is cancelled or times out. */
function latency(key: string, minMs: number, maxMs: number, signal: AbortSignal): Promise<void> {
  const ms = between(`latency:${key}`, minMs, maxMs);
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const COMPANIES: Record<string, { funding: string; round: string; investors: string[]; app: number }> = {
  jasper: { funding: '$131M', round: 'Series A', investors: ['Insight Partners', 'Coatue'], app: 4.6 },
  'copy.ai': { funding: '$13.9M', round: 'Series A', investors: ['Wing VC', 'Craft Ventures'], app: 4.4 },
  writesonic: { funding: '$2.6M', round: 'Seed', investors: ['Y Combinator', 'Soma Capital'], app: 4.5 },
};
const COMPLAINTS = ['Slow loading', 'Pricing changes', 'Repetitive output', 'Login issues', 'Credit limits'];

/** `Jasper`, `jasper.ai`, `https://www.jasper.ai/` all name the same company. */
function companyOf(name: string) {
  const key = name
    .toLowerCase()
    .trim()
    .replace(/^https?:\/\//, '')
    .replace(/^www\./, '')
    .replace(/\/.*$/, '');
  return COMPANIES[key] ?? COMPANIES[key.replace(/\.(ai|com|io)$/, '')];
}

export const fetchCompanyWebsite = defineTool({
  name: 'fetch_company_website',
  description:
    "Fetch product information from a company's website (simulated). Independent of every other tool: " +
    'call it in parallel for several companies, and at the same time as get_funding_data and analyze_app_store.',
  input: z.object({ url: z.string().min(1).describe('Website, e.g. jasper.ai') }),
  timeoutMs: 5_000,
  retry: { attempts: 2, backoffMs: 50 },
  run: async ({ url }, { signal }) => {
    await latency(`site:${url}`, 140, 320, signal);
    const host = url.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    return {
      url: host,
      title: `${host} — AI writing assistant`,
      product_count: between(`products:${host}`, 3, 40),
      pricing_from_usd: between(`price:${host}`, 9, 59),
      description: 'Generates marketing copy, blog posts and ads from short prompts.',
    };
  },
});

export const getFundingData = defineTool({
  name: 'get_funding_data',
  description:
    'Get funding history and investor information for a company (simulated). Can be called in parallel ' +
    'for several companies and together with the other research tools.',
  input: z.object({ company_name: z.string().min(1) }),
  timeoutMs: 5_000,
  retry: { attempts: 2, backoffMs: 50 },
  run: async ({ company_name }, { signal }) => {
    await latency(`funding:${company_name}`, 100, 300, signal);
    const known = companyOf(company_name);
    return {
      company: company_name,
      total_funding: known?.funding ?? `$${between(`f:${company_name}`, 1, 90)}M`,
      last_round: known?.round ?? 'Seed',
      investors: known?.investors ?? ['Undisclosed'],
    };
  },
});

export const analyzeAppStore = defineTool({
  name: 'analyze_app_store',
  description:
    'Analyze user reviews of an app on the App Store (simulated). Can be called in parallel for several ' +
    'apps and together with the other research tools.',
  input: z.object({ app_name: z.string().min(1) }),
  timeoutMs: 5_000,
  run: async ({ app_name }, { signal }) => {
    await latency(`app:${app_name}`, 160, 360, signal);
    const known = companyOf(app_name);
    return {
      app: app_name,
      rating: known?.app ?? Number((3.5 + unit(`r:${app_name}`) * 1.4).toFixed(1)),
      reviews_count: between(`reviews:${app_name}`, 800, 25_000),
      top_complaint: COMPLAINTS[between(`c:${app_name}`, 0, COMPLAINTS.length - 1)],
    };
  },
});

export const getWeather = defineTool({
  name: 'get_weather',
  description:
    "Get a city's weather forecast for a day (simulated). Independent: call it in parallel with " +
    'find_restaurants and list_events.',
  input: z.object({ city: z.string().min(1), date: z.string().default('tomorrow') }),
  run: async ({ city, date }, { signal }) => {
    await latency(`weather:${city}:${date}`, 80, 220, signal);
    const skies = ['sunny', 'partly cloudy', 'light rain', 'overcast'];
    return {
      city,
      date,
      forecast: skies[between(`sky:${city}:${date}`, 0, skies.length - 1)],
      high_c: between(`hi:${city}:${date}`, 14, 29),
      low_c: between(`lo:${city}:${date}`, 4, 13),
      precipitation_chance: between(`rain:${city}:${date}`, 0, 80) / 100,
    };
  },
});

export const findRestaurants = defineTool({
  name: 'find_restaurants',
  description:
    'Recommend restaurants in a city (simulated). Independent: call it in parallel with get_weather and list_events.',
  input: z.object({
    city: z.string().min(1),
    cuisine: z.string().optional(),
    count: z.number().int().min(1).max(10).default(3),
  }),
  run: async ({ city, cuisine, count }, { signal }) => {
    await latency(`food:${city}:${cuisine ?? ''}`, 120, 280, signal);
    const kinds = cuisine ? [cuisine] : ['bistro', 'ramen', 'trattoria', 'tapas', 'dim sum'];
    return {
      city,
      restaurants: Array.from({ length: count }, (_, i) => {
        const kind = kinds[i % kinds.length] ?? 'bistro';
        return { name: `${city} ${kind} #${i + 1}`, cuisine: kind, rating: 4 + unit(`${city}${i}`) / 1.1 };
      }).map((r) => ({ ...r, rating: Number(r.rating.toFixed(1)) })),
    };
  },
});

export const listEvents = defineTool({
  name: 'list_events',
  description:
    'List cultural events in a city on a day (simulated). Independent: call it in parallel with get_weather ' +
    'and find_restaurants.',
  input: z.object({ city: z.string().min(1), date: z.string().default('tomorrow') }),
  run: async ({ city, date }, { signal }) => {
    await latency(`events:${city}:${date}`, 100, 260, signal);
    return {
      city,
      date,
      events: [
        { name: `${city} Philharmonic: evening concert`, time: '19:30' },
        { name: 'Contemporary art late opening', time: '18:00' },
      ],
    };
  },
});

export const getStockPrice = defineTool({
  name: 'get_stock_price',
  description:
    'Get the current price and daily change of a single stock (simulated). When you need several stocks, call ' +
    'this tool several times at once (parallel calls) rather than waiting for each result.',
  input: z.object({ symbol: z.string().regex(/^[A-Z.]{1,6}$/, 'an upper-case ticker such as AAPL') }),
  run: async ({ symbol }, { signal }) => {
    await latency(`price:${symbol}`, 60, 200, signal);
    return {
      symbol,
      price: Number((50 + unit(`p:${symbol}`) * 450).toFixed(2)),
      change_pct: Number((unit(`d:${symbol}`) * 6 - 3).toFixed(2)),
      currency: 'USD',
    };
  },
});

export const getCompanyInfo = defineTool({
  name: 'get_company_info',
  description:
    'Get basic company information for a ticker: founding year, core business, headcount (simulated). ' +
    'Independent of get_stock_price: call both at the same time.',
  input: z.object({ symbol: z.string().regex(/^[A-Z.]{1,6}$/, 'an upper-case ticker such as AAPL') }),
  run: async ({ symbol }, { signal }) => {
    await latency(`info:${symbol}`, 80, 240, signal);
    return {
      symbol,
      founded: between(`y:${symbol}`, 1976, 2004),
      employees: between(`e:${symbol}`, 20_000, 220_000),
      business: 'Technology products and services',
    };
  },
});

const PRICES: Record<string, number> = { 'SKU-1001': 49.0, 'SKU-2002': 129.0, 'SKU-3003': 15.5 };

export const createOrder = defineTool({
  name: 'create_order',
  description:
    'Create an order and return its order_id. IMPORTANT: call this first, on its own: process_payment and ' +
    'send_confirmation need the order_id. Once you have it, those two can be called in parallel.',
  input: z.object({ product_id: z.string(), quantity: z.number().int().min(1), user_id: z.string() }),
  run: async ({ product_id, quantity, user_id }, { signal }) => {
    await latency(`order:${product_id}:${user_id}`, 80, 180, signal);
    const price = PRICES[product_id];
    if (price === undefined)
      throw new Error(`unknown product_id ${product_id}; known: ${Object.keys(PRICES).join(', ')}`);
    const orderId = `ord_${createHash('sha256').update(`${product_id}|${quantity}|${user_id}`).digest('hex').slice(0, 10)}`;
    return { order_id: orderId, total_usd: price * quantity, status: 'created' };
  },
});

const orderId = z.string().regex(/^ord_[0-9a-f]{10}$/, 'an order_id returned by create_order');

export const processPayment = defineTool({
  name: 'process_payment',
  description:
    'Charge the payment for an order. Depends on create_order (needs its order_id). Can be called in ' +
    'parallel with send_confirmation once the order_id is known.',
  input: z.object({ order_id: orderId, payment_method: z.enum(['credit_card', 'paypal', 'bank_transfer']) }),
  run: async ({ order_id, payment_method }, { signal }) => {
    await latency(`pay:${order_id}`, 150, 300, signal);
    return { order_id, payment_id: `pay_${order_id.slice(4)}`, method: payment_method, status: 'paid' };
  },
});

export const sendConfirmation = defineTool({
  name: 'send_confirmation',
  description:
    'Send the order confirmation email. Depends on create_order (needs its order_id). Can be called in ' +
    'parallel with process_payment.',
  input: z.object({ order_id: orderId, email: z.email() }),
  run: async ({ order_id, email }, { signal }) => {
    await latency(`mail:${order_id}`, 120, 260, signal);
    return { order_id, sent_to: email, message_id: `msg_${order_id.slice(4)}`, status: 'sent' };
  },
});

export const checkBalance = defineTool({
  name: 'check_balance',
  description: 'The balance of a company account, in EUR. Independent of every other tool.',
  input: z.object({ account: z.string().min(1) }),
  run: async ({ account }, { signal }) => {
    await latency(`balance:${account}`, 60, 140, signal);
    return { account, balance_eur: between(`balance:${account}`, 20_000, 90_000) };
  },
});

export const transferFunds = defineTool({
  name: 'transfer_funds',
  description:
    'Pay an amount in EUR to a supplier. Transfers above 1000 EUR wait for a person to approve them ' +
    '(the result says so if they were denied or the approval expired).',
  input: z.object({ to: z.string().min(1), amount_eur: z.number().positive(), reference: z.string() }),
  approval: { when: [{ field: 'amount_eur', above: 1_000 }] },
  run: async ({ to, amount_eur, reference }, { signal }) => {
    await latency(`transfer:${to}:${reference}`, 80, 200, signal);
    return {
      transfer_id: `tr_${createHash('sha256').update(`${to}|${reference}`).digest('hex').slice(0, 10)}`,
      to,
      amount_eur,
      status: 'sent',
    };
  },
});

const demo = [
  fetchCompanyWebsite,
  getFundingData,
  analyzeAppStore,
  getWeather,
  findRestaurants,
  listEvents,
  getStockPrice,
  getCompanyInfo,
  createOrder,
  processPayment,
  sendConfirmation,
  checkBalance,
  transferFunds,
];
export default demo;
