/**
 * What Grafana sends to Prometheus for deploy/'s dashboard: every target's expr and every query
 * variable, with Grafana's variables substituted the way Grafana does it, so a test can send them
 * to a real Prometheus.
 */

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface PanelQuery {
  panel: string;
  type: string;
  refId: string;
  expr: string;
}

export interface QueryVariable {
  name: string;
  /** `label_values(<selector>, <label>)` as written in the dashboard. */
  query: string;
  includeAll: boolean;
  allValue?: string;
}

export function panelQueries(dashboard: unknown): PanelQuery[] {
  if (!isObj(dashboard) || !Array.isArray(dashboard.panels)) throw new Error('dashboard: no panels');
  const out: PanelQuery[] = [];
  const visit = (panels: unknown[]) => {
    for (const p of panels.filter(isObj)) {
      if (Array.isArray(p.panels)) visit(p.panels); // collapsed rows keep their panels inside
      if (p.type === 'row' || !Array.isArray(p.targets)) continue;
      for (const t of p.targets.filter(isObj)) {
        if (typeof t.expr !== 'string') throw new Error(`panel ${String(p.title)}: a target without expr`);
        out.push({ panel: String(p.title), type: String(p.type), refId: String(t.refId), expr: t.expr });
      }
    }
  };
  visit(dashboard.panels);
  return out;
}

export function queryVariables(dashboard: unknown): QueryVariable[] {
  const list = isObj(dashboard) && isObj(dashboard.templating) ? dashboard.templating.list : undefined;
  if (!Array.isArray(list)) throw new Error('dashboard: no templating.list');
  return list
    .filter(isObj)
    .filter((v) => v.type === 'query')
    .map((v) => ({
      name: String(v.name),
      query: isObj(v.query) ? String(v.query.query) : String(v.query),
      includeAll: v.includeAll === true,
      ...(typeof v.allValue === 'string' ? { allValue: v.allValue } : {}),
    }));
}

/** `label_values(metric{...}, label)` → the selector and the label (Grafana's Prometheus helper). */
export function parseLabelValues(query: string): { selector: string; label: string } {
  const m = /^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/s.exec(query);
  if (!m?.[1] || !m[2]) throw new Error(`not a label_values(selector, label) query: ${query}`);
  return { selector: m[1], label: m[2] };
}

/** Grafana's regex formatting of a multi-value selection for Prometheus: `(a|b)`, escaped. */
export function formatRegexValues(values: readonly string[]): string {
  const escaped = values.map((v) => v.replace(/[\\^$*+?.()|[\]{}]/g, '\\\\$&'));
  return escaped.length === 1 ? (escaped[0] ?? '') : `(${escaped.join('|')})`;
}

/**
 * Substitutes `$name`, `${name}`, `[[name]]` and Grafana's built-in `$__rate_interval`,
 * `$__interval`, `$__range`. Unknown variables are an error (Grafana would send them as text).
 */
export function expandVariables(
  expr: string,
  values: Readonly<Record<string, string>>,
  builtins: { interval: string; rateInterval: string; range: string },
): string {
  const builtin: Record<string, string> = {
    __rate_interval: builtins.rateInterval,
    __interval: builtins.interval,
    __range: builtins.range,
  };
  return expr.replace(/\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)/g, (_all, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? '';
    const value = builtin[name] ?? values[name];
    if (value === undefined) throw new Error(`unknown Grafana variable $${name} in ${expr}`);
    return value;
  });
}

/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval), in seconds. */
export function rateIntervalSeconds(intervalSeconds: number, scrapeSeconds: number): number {
  return Math.max(intervalSeconds + scrapeSeconds, 4 * scrapeSeconds);
}
