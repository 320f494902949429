/**
 * The metric contract that deploy/'s dashboards and alerts may rely on, and a small static checker
 * for the PromQL they contain. Not a PromQL parser: it finds toolq metric names, their label
 * matchers and the grouping clauses, which is where dashboards and alerts silently break when a
 * name or label drifts (a misspelt series is not an error in Prometheus, just an empty graph).
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * Mirrors the metric list in shared/design.md ("Observability"); labels as exported by
 * packages/shared/src/metrics.ts. Change the three together.
 */
export const METRICS: Readonly<Record<string, { type: MetricType; labels: readonly string[] }>> = {
  toolq_tool_calls_total: { type: 'counter', labels: ['tool', 'pool', 'outcome'] },
  toolq_tool_duration_seconds: { type: 'histogram', labels: ['tool', 'pool'] },
  toolq_tool_queue_wait_seconds: { type: 'histogram', labels: ['pool'] },
  toolq_batch_size: { type: 'histogram', labels: [] },
  toolq_batch_duration_seconds: { type: 'histogram', labels: [] },
  toolq_batch_overhead_seconds: { type: 'histogram', labels: [] },
  toolq_late_results_total: { type: 'counter', labels: [] },
  toolq_queue_jobs: { type: 'gauge', labels: ['pool', 'state'] },
  toolq_workers: { type: 'gauge', labels: ['pool'] },
  toolq_model_tokens_total: { type: 'counter', labels: ['model', 'role', 'kind'] },
};

/** Closed label value sets from the design. */
export const LABEL_VALUES: Readonly<Record<string, readonly string[]>> = {
  outcome: ['ok', 'error', 'timeout', 'invalid_input', 'unknown_tool', 'cancelled'],
  state: ['waiting', 'active', 'delayed', 'failed'],
};

/** Labels Prometheus adds to every scraped series. */
export const TARGET_LABELS: readonly string[] = ['job', 'instance'];

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;
/** What a counter may sit directly inside; Grafana's label_values() only lists series. */
const COUNTER_FUNCTIONS = new Set(['rate', 'irate', 'increase', 'label_values']);

export interface MetricRef {
  name: string;
  base: string;
  suffix: '' | (typeof HISTOGRAM_SUFFIXES)[number];
  index: number;
}

/** Resolves `toolq_x_bucket` to its histogram `toolq_x`; undefined for names outside the contract. */
export function resolveMetric(name: string): Omit<MetricRef, 'index'> | undefined {
  if (METRICS[name]) return { name, base: name, suffix: '' };
  for (const suffix of HISTOGRAM_SUFFIXES) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && METRICS[base]) return { name, base, suffix };
  }
  return undefined;
}

/** Every `toolq_*` identifier in an expression (other series such as `up` are not checked). */
export function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\btoolq_[A-Za-z0-9_]+\b/g)].map((m) => m[0]);
}

/** Labels named in `by (...)`, `without (...)`, `on (...)` and `ignoring (...)` clauses. */
export function groupingLabels(expr: string): string[] {
  const labels: string[] = [];
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of (m[1] ?? '').split(',')) if (label.trim()) labels.push(label.trim());
  }
  return labels;
}

/** Name of the function whose argument list directly encloses position `index`, or ''. */
function enclosingFunction(expr: string, index: number): string {
  let depth = 0;
  for (let i = index - 1; i >= 0; i--) {
    const c = expr[i];
    if (c === ')') depth++;
    else if (c === '(') {
      if (depth === 0) return /([A-Za-z_][A-Za-z0-9_]*)\s*$/.exec(expr.slice(0, i))?.[1] ?? '';
      depth--;
    }
  }
  return '';
}

function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const stack: string[] = [];
  let inString = false;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i] as string;
    if (c === '"' && expr[i - 1] !== '\\') inString = !inString;
    if (inString) continue;
    if (c === '(' || c === '[' || c === '{') stack.push(c);
    else if (pairs[c] && stack.pop() !== pairs[c]) return false;
  }
  return stack.length === 0 && !inString;
}

/**
 * Problems with one expression, as readable strings (empty = fine). `where` prefixes each message.
 * Grafana variables (`$pool`, `$__rate_interval`) are allowed wherever a value goes.
 */
export function checkPromql(expr: string, where: string): string[] {
  const problems: string[] = [];
  const say = (message: string) => problems.push(`${where}: ${message}`);
  if (!expr.trim()) return [`${where}: empty expression`];
  if (!balanced(expr)) say(`unbalanced brackets or quotes in ${JSON.stringify(expr)}`);

  const refs: MetricRef[] = [];
  for (const m of expr.matchAll(/\btoolq_[A-Za-z0-9_]+\b/g)) {
    const resolved = resolveMetric(m[0]);
    if (!resolved) {
      say(`${m[0]} is not a metric of the contract (${Object.keys(METRICS).join(', ')})`);
      continue;
    }
    refs.push({ ...resolved, index: m.index });
  }

  for (const ref of refs) {
    const { type, labels } = METRICS[ref.base] as { type: MetricType; labels: readonly string[] };
    if (type === 'histogram' && ref.suffix === '') {
      say(`${ref.name} is a histogram: query ${ref.name}_bucket, _sum or _count`);
    }
    if (type !== 'histogram' && ref.suffix !== '')
      say(`${ref.name}: ${ref.base} is a ${type}, not a histogram`);
    const isCounter = type === 'counter' || ref.suffix !== '';
    if (isCounter) {
      const fn = enclosingFunction(expr, ref.index);
      if (!COUNTER_FUNCTIONS.has(fn))
        say(`${ref.name} is a counter: wrap it in rate() or increase(), not ${fn || 'nothing'}`);
    }

    // Label matchers directly after the name.
    const rest = expr.slice(ref.index + ref.name.length);
    const selector = /^\s*\{([^}]*)\}/.exec(rest)?.[1];
    if (selector === undefined) continue;
    const allowed = new Set([...labels, ...TARGET_LABELS, ...(ref.suffix === '_bucket' ? ['le'] : [])]);
    for (const m of selector.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      const [, label = '', op = '', value = ''] = m;
      if (!allowed.has(label)) say(`${ref.name} has no label ${label} (it has: ${[...allowed].join(', ')})`);
      const known = LABEL_VALUES[label];
      if (!known || value.includes('$')) continue;
      const values = op === '=~' || op === '!~' ? value.split('|') : [value];
      for (const v of values) {
        if (!known.includes(v)) say(`${label}="${v}" is not one of ${known.join('|')}`);
      }
    }
  }

  // Grouping may only name labels that some referenced series carries.
  if (refs.length > 0) {
    const carried = new Set<string>(TARGET_LABELS);
    for (const ref of refs) {
      for (const label of METRICS[ref.base]?.labels ?? []) carried.add(label);
      if (ref.suffix === '_bucket') carried.add('le');
    }
    for (const label of groupingLabels(expr)) {
      if (!carried.has(label))
        say(`groups by ${label}, which none of ${refs.map((r) => r.name).join(', ')} carries`);
    }
  }

  // histogram_quantile over buckets summed without `le` returns nothing.
  const quantiles = (expr.match(/histogram_quantile\s*\(/g) ?? []).length;
  const leGroupings = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].filter((m) =>
    /\ble\b/.test(m[1] ?? ''),
  ).length;
  if (quantiles > leGroupings) say('histogram_quantile needs its buckets aggregated `by (..., le)`');
  return problems;
}
