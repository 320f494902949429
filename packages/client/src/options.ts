/**
 * The checks of every option the client takes, where it is given: a wrong value or an unknown
 * name (a typo such as `timeoutMS`) is an error naming it, never an option silently left at its
 * default. Written out rather than with a schema library: the client has no dependencies.
 */

/** A misused option of the client; thrown before any request is sent. */
export class ToolqOptionError extends TypeError {
  override name = 'ToolqOptionError';
  readonly code = 'INVALID_OPTION';
  /** The option at fault, e.g. `timeoutMs` or `retry.attempts`. */
  readonly option: string;

  constructor(option: string, message: string) {
    super(message);
    this.option = option;
  }
}

type Check = readonly [test: (value: unknown) => boolean, expected: string];
export type OptionSpec = Readonly<Record<string, Check>>;

/** Node's timers hold at most 2³¹−1 ms. */
const MAX_MS = 2 ** 31 - 1;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const whole = (min: number, max: number) => (v: unknown) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

const RETRY: OptionSpec = {
  attempts: [whole(1, Number.MAX_SAFE_INTEGER), 'a whole number >= 1'],
  initialDelayMs: [whole(0, MAX_MS), `a whole number of ms from 0 to ${MAX_MS}`],
  maxDelayMs: [whole(0, MAX_MS), `a whole number of ms from 0 to ${MAX_MS}`],
};

const timeoutMs: Check = [whole(1, MAX_MS), `a whole number of ms from 1 to ${MAX_MS}`];
const retry: Check = [(v) => isObject(v) && problems('retry', v, RETRY).length === 0, 'retry options'];

export const CLIENT_OPTIONS: OptionSpec = {
  baseUrl: [
    (v) => typeof v === 'string' && /^https?:\/\//i.test(v) && URL.canParse(v),
    'an http:// or https:// URL',
  ],
  token: [(v) => typeof v === 'string' && v !== '', 'a non-empty string'],
  timeoutMs,
  retry,
  onRetry: [(v) => typeof v === 'function', 'a function'],
  fetch: [(v) => typeof v === 'function', 'a fetch function'],
};

export const CALL_OPTIONS: OptionSpec = {
  signal: [(v) => v instanceof AbortSignal, 'an AbortSignal'],
  timeoutMs,
  retry: [(v) => v === false || retry[0](v), 'retry options or false'],
};

/** The server's own bounds (POST /v1/tool-batches), so that a bad value fails here, named. */
export const TOOL_BATCH_OPTIONS: OptionSpec = {
  ...CALL_OPTIONS,
  batchTimeoutMs: [whole(1, 3_600_000), 'a whole number of ms from 1 to 3600000'],
  failurePolicy: [(v) => v === 'continue' || v === 'abort' || v === 'retry', 'one of continue, abort, retry'],
  maxRetries: [whole(0, 20), 'a whole number from 0 to 20'],
  priority: [whole(-10, 10), 'a whole number from -10 to 10 (higher first)'],
  batchId: [
    (v) => typeof v === 'string' && /^[A-Za-z0-9_.-]{1,100}$/.test(v),
    '1-100 letters, digits, _ . -',
  ],
  // The server checks its size and values (it answers 400 naming them).
  context: [(v) => isObject(v) && Object.getPrototypeOf(v) === Object.prototype, 'a plain JSON object'],
  approvalTools: [
    (v) => Array.isArray(v) && v.every((t) => typeof t === 'string' && t !== ''),
    'an array of tool names',
  ],
  approvalTimeoutMs: [whole(1, 2 ** 31 - 1), 'a whole number of ms from 1 to 2147483647'],
};

export const RUN_OPTIONS: OptionSpec = {
  ...CALL_OPTIONS,
  idempotencyKey: [(v) => typeof v === 'string' && v !== '', 'a non-empty string'],
};

export const LIST_RUNS_QUERY: OptionSpec = {
  limit: [whole(1, 1_000), 'a whole number from 1 to 1000'],
  cursor: [(v) => typeof v === 'string', 'a string'],
};

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : String(value);
}

/** `[option, message]` for every problem; `undefined` values count as not given. */
function problems(prefix: string, given: Record<string, unknown>, spec: OptionSpec): [string, string][] {
  const known = Object.keys(spec);
  return Object.entries(given).flatMap(([key, value]): [string, string][] => {
    const option = prefix ? `${prefix}.${key}` : key;
    const check = Object.hasOwn(spec, key) ? spec[key] : undefined;
    if (!check) {
      const meant = known.find((name) => name.toLowerCase() === key.toLowerCase());
      const hint = meant ? ` (did you mean ${meant}?)` : '';
      return [
        [option, `${JSON.stringify(option)} is not an option${hint}; the options are ${known.join(', ')}`],
      ];
    }
    if (value === undefined || check[0](value)) return [];
    if (isObject(value) && key === 'retry') return problems(option, value, RETRY);
    return [[option, `${option} must be ${check[1]}, got ${show(value)}`]];
  });
}

/** Throws a ToolqOptionError naming the first wrong option (and every other one in its message). */
export function checkOptions(where: string, given: unknown, spec: OptionSpec): void {
  if (given === undefined) return;
  if (!isObject(given))
    throw new ToolqOptionError('(options)', `${where}: the options must be an object, got ${show(given)}`);
  const found = problems('', given, spec);
  const first = found[0];
  if (first)
    throw new ToolqOptionError(first[0], `${where}: ${found.map(([, message]) => message).join('; ')}`);
}
