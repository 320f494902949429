/**
 * Static checks of deploy/: no Docker engine or cluster is available to the test suite, so every
 * file is parsed and cross-checked against the others (ports, names, keys, secrets), against the
 * package scripts, and against the metric table in @toolq/shared. Whether the queries themselves
 * are right is proven by a real Prometheus in ./prometheus-e2e.test.ts. Where promtool or kubectl
 * is on the PATH, they check the files as well.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { METRICS } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { buildPackages } from '../../test-support/built-packages.ts';

const DEPLOY = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = resolve(DEPLOY, '..');
const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Small helpers: typed access to parsed YAML without `any`.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function obj(v: unknown, what: string): Obj {
  if (!isObj(v)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(v)}`);
  return v;
}
function list(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${what}: expected a list, got ${JSON.stringify(v)}`);
  return v;
}
function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}
/** Dotted path lookup: at(x, 'spec.template.spec'). */
function at(v: unknown, path: string): unknown {
  let cur = v;
  for (const key of path.split('.')) cur = isObj(cur) ? cur[key] : undefined;
  return cur;
}

const readDeploy = (rel: string) => readFileSync(join(DEPLOY, rel), 'utf8');

/** All documents of a YAML file; `merge` = YAML 1.1 `<<:` keys, which docker compose honours. */
function yamlDocs(rel: string): unknown[] {
  const docs = parseAllDocuments(readDeploy(rel), { merge: true });
  const out: unknown[] = [];
  for (const doc of docs) {
    const errors = [...doc.errors, ...doc.warnings].map((e) => e.message);
    if (errors.length > 0) throw new Error(`${rel}: ${errors.join('; ')}`);
    const value: unknown = doc.toJS();
    if (value != null) out.push(value);
  }
  return out;
}
const yamlDoc = (rel: string): Obj => obj(yamlDocs(rel)[0], rel);

function filesUnder(dir: string, pattern: RegExp): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path, pattern));
    else if (pattern.test(entry.name)) out.push(relative(DEPLOY, path));
  }
  return out.sort();
}

const hasTool = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const HAS_PROMTOOL = hasTool('promtool', ['--version']);
const HAS_KUBECTL = hasTool('kubectl', ['version', '--client']);

/** "60s", "1m30s" -> seconds. */
function seconds(duration: unknown): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(String(duration));
  if (!m || (!m[1] && !m[2])) throw new Error(`not a duration: ${String(duration)}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
}

// The image holds one `pnpm deploy --prod` directory per process under /app and runs the package's
// built bin with plain node: /app/<package>/<bin> (the Dockerfile's checks below hold it to that).
const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  packageManager?: string;
};
const packageBin = (pkg: string): string => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', pkg, 'package.json'), 'utf8')) as {
    bin?: Record<string, string>;
  };
  const bin = Object.values(manifest.bin ?? {})[0];
  if (!bin?.endsWith('.js')) throw new Error(`packages/${pkg}: no built bin in package.json: ${bin}`);
  return bin.replace(/^\.\//, '');
};
const imageEntry = (pkg: string) => `/app/${pkg}/${packageBin(pkg)}`;
const COORDINATOR_ENTRY = imageEntry('coordinator');
const WORKER_ENTRY = imageEntry('worker');
const nodeCommand = (entry: string) => ['node', entry];

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
/** toolq's minimum token length (TOOLQ_API_TOKEN in packages/shared/src/config.ts). */
const MIN_TOKEN_LENGTH = 16;

// ---------------------------------------------------------------------------------------------

describe('every YAML and JSON file in deploy/', () => {
  const yamlFiles = filesUnder(DEPLOY, /\.ya?ml$/);
  const jsonFiles = filesUnder(DEPLOY, /\.json$/);

  it('finds the files this suite is about', () => {
    expect(yamlFiles).toEqual(
      expect.arrayContaining([
        'docker-compose.yml',
        'k8s/kustomization.yaml',
        'k8s/keda-scaledobject.yaml',
        'prometheus/prometheus.yml',
        'prometheus/alerts.yml',
        'grafana/provisioning/datasources/prometheus.yml',
        'grafana/provisioning/dashboards/toolq.yml',
      ]),
    );
    expect(jsonFiles).toContain('grafana/dashboards/toolq.json');
  });

  it.each(yamlFiles)('%s parses without errors or warnings', (file) => {
    expect(yamlDocs(file).length).toBeGreaterThan(0);
  });

  it.each(jsonFiles)('%s parses', (file) => {
    expect(() => JSON.parse(readDeploy(file))).not.toThrow();
  });
});

/** Every `toolq_*` identifier in an expression, and the table metric it belongs to (histogram suffixes). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\btoolq_[A-Za-z0-9_]+\b/g)].map((m) => m[0]);
}
function tableMetric(name: string): string | undefined {
  if (name in METRICS) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base in METRICS && METRICS[base as keyof typeof METRICS].type === 'histogram' ? base : undefined;
}
/** Labels named in `by (...)` clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '')
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean),
  );
}

describe('the metric table', () => {
  it('names only toolq_ metrics with a type, help and bounded labels', () => {
    for (const [name, def] of Object.entries(METRICS)) {
      expect(name).toMatch(/^toolq_[a-z0-9_]+$/);
      if (def.type === 'counter') expect(name).toMatch(/_total$/);
      expect(def.help.length, name).toBeGreaterThan(10);
      for (const label of def.labels)
        expect([
          'tool',
          'pool',
          'outcome',
          'action',
          'state',
          'model',
          'role',
          'kind',
          'reason',
          'result',
          'status', // an approval's end: four values (METRIC_LABEL_VALUES)
        ]).toContain(label);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('prometheus alert rules', () => {
  const doc = yamlDoc('prometheus/alerts.yml');
  const groups = list(doc.groups, 'groups').map((g, i) => obj(g, `groups[${i}]`));
  const rules = groups.flatMap((g) => list(g.rules, `group ${String(g.name)}`).map((r) => obj(r, 'rule')));
  const alerts = rules.filter((r) => typeof r.alert === 'string');

  it('has named groups and uniquely named alerts', () => {
    for (const g of groups) expect(str(g.name, 'group name')).toMatch(/^toolq\./);
    expect(alerts.length).toBeGreaterThanOrEqual(6);
    const names = alerts.map((a) => a.alert);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(alerts.map((a) => [String(a.alert), a] as const))(
    '%s has for:, severity and summary/description',
    (_name, rule) => {
      expect(String(rule.for)).toMatch(/^[1-9]\d*[smh]$/);
      expect(['critical', 'warning', 'info']).toContain(at(rule, 'labels.severity'));
      expect(str(at(rule, 'annotations.summary'), 'summary').length).toBeGreaterThan(10);
      expect(str(at(rule, 'annotations.description'), 'description').length).toBeGreaterThan(30);
    },
  );

  it('names only metrics of the table (Prometheus evaluates them in prometheus-e2e.test.ts)', () => {
    const unknown = alerts.flatMap((a) => metricNames(str(a.expr, 'expr')).filter((n) => !tableMetric(n)));
    expect(unknown).toEqual([]);
  });

  it('templates only labels that survive the aggregation', () => {
    for (const a of alerts) {
      const expr = str(a.expr, 'expr');
      const kept = groupingLabels(expr);
      const used = [...JSON.stringify(a.annotations).matchAll(/\$labels\.([A-Za-z_]+)/g)].map((m) => m[1]);
      // An expression without grouping keeps its series' labels; those are not checked here.
      if (!/\bby\s*\(/.test(expr)) continue;
      for (const label of used) expect(kept, `${String(a.alert)} uses $labels.${label}`).toContain(label);
    }
  });

  it('covers the failure modes the design names', () => {
    const exprs = alerts.map((a) => str(a.expr, 'expr'));
    const some = (...parts: (string | RegExp)[]) =>
      exprs.some((e) => parts.every((p) => (typeof p === 'string' ? e.includes(p) : p.test(e))));
    expect(some('toolq_tool_calls_total', 'outcome="error"'), 'tool error rate').toBe(true);
    expect(some('toolq_tool_calls_total', 'outcome="timeout"'), 'tool timeout rate').toBe(true);
    expect(some('histogram_quantile(0.99', 'toolq_batch_overhead_seconds_bucket'), 'batch overhead p99').toBe(
      true,
    );
    expect(some('toolq_queue_jobs', 'state="waiting"', /deriv\(|delta\(/), 'growing backlog').toBe(true);
    expect(some('toolq_queue_jobs', 'state="waiting"'), 'waiting jobs high').toBe(true);
    expect(some('toolq_workers', /<\s*1|==\s*0/), 'no live workers').toBe(true);
    expect(some('toolq_late_results_total'), 'late results').toBe(true);
  });

  it('aggregates the shared queue and worker gauges with max, since every coordinator reports them', () => {
    for (const expr of alerts.map((a) => str(a.expr, 'expr'))) {
      expect(expr).not.toMatch(/sum\b[^(]*\([^()]*\btoolq_(queue_jobs|workers)\b/);
    }
  });

  it.skipIf(!HAS_PROMTOOL)('promtool accepts the rules and their unit tests pass', () => {
    const dir = join(DEPLOY, 'prometheus');
    const check = spawnSync('promtool', ['check', 'rules', 'alerts.yml'], { cwd: dir, encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const unit = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir, encoding: 'utf8' });
    expect(unit.status, unit.stdout + unit.stderr).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

const compose = yamlDoc('docker-compose.yml');
const services = obj(compose.services, 'services');
const service = (name: string) => obj(services[name], `service ${name}`);

/** A compose service's environment as a map, from either the mapping or the list form. */
function composeEnv(name: string): Record<string, string | null> {
  const env = service(name).environment;
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => String(e).split(/=(.*)/s).slice(0, 2) as [string, string]));
  }
  return Object.fromEntries(
    Object.entries(obj(env ?? {}, `${name}.environment`)).map(([k, v]) => [k, v == null ? null : String(v)]),
  );
}
const healthcheckText = (name: string) => JSON.stringify(at(service(name), 'healthcheck.test'));

describe('docker-compose.yml', () => {
  it.each(Object.keys(services))('service %s has a healthcheck', (name) => {
    const hc = obj(service(name).healthcheck, `${name}.healthcheck`);
    expect(hc.disable).not.toBe(true);
    const test = hc.test;
    expect(Array.isArray(test) ? test.length : String(test).length).toBeGreaterThan(1);
    expect(JSON.stringify(test)).not.toContain('NONE');
  });

  it('gives a required token to every service that listens beyond loopback', () => {
    const exposed = Object.keys(services).filter((name) => {
      const host = composeEnv(name).TOOLQ_HOST;
      return host != null && !LOOPBACK.has(host);
    });
    expect(exposed).toContain('coordinator');
    for (const name of exposed) {
      // `${VAR:?message}` makes compose refuse to start when the token is unset or empty.
      expect(composeEnv(name).TOOLQ_API_TOKEN, name).toMatch(/^\$\{TOOLQ_API_TOKEN:\?[^}]+\}$/);
    }
    // /metrics and the admin page answer only an operator token: `name:${TOOLQ_OPERATOR_TOKEN:?…}`.
    expect(composeEnv('coordinator').TOOLQ_OPERATOR_TOKENS).toMatch(
      /^[A-Za-z0-9_.-]+:\$\{TOOLQ_OPERATOR_TOKEN:\?[^}]+\}$/,
    );
  });

  it('runs the coordinator as the image default and the worker with the diagnostics tools', () => {
    expect(service('coordinator').command).toBeUndefined();
    expect(service('worker').command).toEqual([...nodeCommand(WORKER_ENTRY), '--tools', 'diagnostics']);
    expect(at(service('worker'), 'deploy.replicas')).toBe(2);
  });

  it('health-checks each toolq service on the port it is configured to serve', () => {
    const c = composeEnv('coordinator');
    expect(c.TOOLQ_HOST).toBe('0.0.0.0');
    expect(healthcheckText('coordinator')).toContain(`127.0.0.1:${c.TOOLQ_PORT}/readyz`);
    expect(at(service('coordinator'), 'ports')).toEqual([`127.0.0.1:${c.TOOLQ_PORT}:${c.TOOLQ_PORT}`]);
    expect(healthcheckText('worker')).toContain(
      `127.0.0.1:${composeEnv('worker').TOOLQ_METRICS_PORT}/readyz`,
    );
  });

  it('sets the worker metrics address itself: the default (a free loopback port) is not scrapable', () => {
    const w = composeEnv('worker');
    expect(w.TOOLQ_METRICS_HOST).toBe('0.0.0.0');
    expect(Number(w.TOOLQ_METRICS_PORT)).toBeGreaterThan(0);
  });

  it('points toolq at the compose Redis, configured as BullMQ needs, and waits for it to be healthy', () => {
    for (const name of ['coordinator', 'worker']) {
      const url = new URL(String(composeEnv(name).REDIS_URL));
      expect(Object.keys(services)).toContain(url.hostname);
      expect(at(service(name), `depends_on.${url.hostname}.condition`)).toBe('service_healthy');
    }
    expect(JSON.stringify(service('redis').command)).toContain('noeviction');
  });

  it('lets a graceful stop finish before docker sends SIGKILL', () => {
    for (const name of ['coordinator', 'worker']) {
      const shutdownMs = Number(composeEnv(name).TOOLQ_SHUTDOWN_TIMEOUT_MS);
      expect(shutdownMs, name).toBeGreaterThan(0);
      expect(seconds(service(name).stop_grace_period), name).toBeGreaterThanOrEqual(shutdownMs / 1000 + 5);
    }
  });

  it('builds the image from deploy/Dockerfile with the repository root as context', () => {
    for (const name of ['coordinator', 'worker']) {
      const build = obj(service(name).build, `${name}.build`);
      const context = resolve(DEPLOY, str(build.context, 'context'));
      expect(context).toBe(ROOT);
      expect(existsSync(join(context, str(build.dockerfile, 'dockerfile')))).toBe(true);
    }
  });

  it('mounts config folders that exist, and hands Prometheus the operator token (not the API token) as a secret', () => {
    for (const name of ['prometheus', 'grafana']) {
      for (const volume of list(service(name).volumes, `${name}.volumes`)) {
        const source = String(volume).split(':')[0] ?? '';
        expect(existsSync(resolve(DEPLOY, source)), `${name}: ${source}`).toBe(true);
      }
    }
    expect(service('prometheus').secrets).toEqual(['toolq_operator_token']);
    expect(at(compose, 'secrets.toolq_operator_token.environment')).toBe('TOOLQ_OPERATOR_TOKEN');
  });
});

// ---------------------------------------------------------------------------------------------

describe('prometheus.yml', () => {
  const config = yamlDoc('prometheus/prometheus.yml');
  const jobs = list(config.scrape_configs, 'scrape_configs').map((j) => obj(j, 'scrape config'));
  const job = (name: string) =>
    obj(
      jobs.find((j) => j.job_name === name),
      `job ${name}`,
    );

  it('loads alerts.yml from beside it', () => {
    const ruleFiles = list(config.rule_files, 'rule_files');
    expect(ruleFiles).toContain('alerts.yml');
    for (const f of ruleFiles) expect(existsSync(join(DEPLOY, 'prometheus', String(f)))).toBe(true);
  });

  it('scrapes the coordinator where compose serves it, with the operator token compose mounts', () => {
    const c = composeEnv('coordinator');
    expect(at(job('toolq-coordinator'), 'static_configs')).toEqual([
      { targets: [`coordinator:${c.TOOLQ_PORT}`] },
    ]);
    expect(at(job('toolq-coordinator'), 'authorization.credentials_file')).toBe(
      '/run/secrets/toolq_operator_token',
    );
  });

  it('finds every worker replica by DNS on the worker metrics port', () => {
    const sd = obj(list(job('toolq-worker').dns_sd_configs, 'dns_sd_configs')[0], 'dns_sd_config');
    expect(sd.names).toEqual(['worker']);
    expect(String(sd.port)).toBe(composeEnv('worker').TOOLQ_METRICS_PORT);
  });

  it('names its jobs so that the target-down alert matches them', () => {
    const alerts = yamlDoc('prometheus/alerts.yml');
    const exprs = JSON.stringify(alerts);
    const jobRegex = /job=~\\"([^\\]+)\\"/.exec(exprs)?.[1];
    expect(jobRegex).toBeDefined();
    const re = new RegExp(`^(?:${jobRegex})$`);
    expect(jobs.map((j) => String(j.job_name)).filter((n) => re.test(n))).toEqual([
      'toolq-coordinator',
      'toolq-worker',
    ]);
  });

  it.skipIf(!HAS_PROMTOOL)('promtool accepts the configuration', () => {
    // --syntax-only: the credentials file exists only inside the compose container.
    const r = spawnSync('promtool', ['check', 'config', '--syntax-only', 'prometheus.yml'], {
      cwd: join(DEPLOY, 'prometheus'),
      encoding: 'utf8',
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('grafana', () => {
  const dashboard = obj(JSON.parse(readDeploy('grafana/dashboards/toolq.json')), 'dashboard');
  const panels = list(dashboard.panels, 'panels').map((p) => obj(p, 'panel'));
  const graphs = panels.filter((p) => p.type !== 'row');
  const variables = list(at(dashboard, 'templating.list'), 'templating.list').map((v) => obj(v, 'variable'));
  const exprsOf = (p: Obj) =>
    list(p.targets, `${String(p.title)}.targets`).map((t) => str(obj(t, 'target').expr, 'expr'));

  it('is a dashboard Grafana can provision: uid, title, unique panel ids, a datasource variable', () => {
    expect(dashboard.uid).toBe('toolq');
    expect(dashboard.title).toBeTruthy();
    expect(Number(dashboard.schemaVersion)).toBeGreaterThanOrEqual(36);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(variables.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    for (const p of graphs) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
      expect(at(p, 'datasource.uid'), String(p.title)).toBe('${datasource}');
      const refIds = list(p.targets, 'targets').map((t) => obj(t, 'target').refId);
      expect(new Set(refIds).size, String(p.title)).toBe(refIds.length);
    }
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    const boxes = panels.map((p) => {
      const g = obj(p.gridPos, `${String(p.title)}.gridPos`);
      return { title: String(p.title), x: Number(g.x), y: Number(g.y), w: Number(g.w), h: Number(g.h) };
    });
    for (const b of boxes) expect(b.x + b.w, b.title).toBeLessThanOrEqual(24);
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} overlaps ${b.title}`).toBe(false);
      }
    }
  });

  it('queries only metrics of the table (Prometheus evaluates them in prometheus-e2e.test.ts)', () => {
    const exprs = graphs.flatMap(exprsOf);
    for (const v of variables.filter((v) => v.type === 'query'))
      exprs.push(isObj(v.query) ? str(v.query.query, 'query') : str(v.query, 'query'));
    expect(exprs.flatMap(metricNames).filter((n) => !tableMetric(n))).toEqual([]);
  });

  it('defines every variable its queries use', () => {
    const defined = new Set(variables.map((v) => String(v.name)));
    const used = graphs
      .flatMap(exprsOf)
      .flatMap((e) => [...e.matchAll(/\$\{?([A-Za-z]\w*)/g)].map((m) => m[1]));
    for (const name of used) expect(defined, `$${name}`).toContain(name);
  });

  it('shows every metric of the contract, and the panels operators asked for', () => {
    const all = graphs.flatMap(exprsOf).join('\n');
    const shown = new Set(metricNames(all).map(tableMetric));
    expect(Object.keys(METRICS).filter((m) => !shown.has(m))).toEqual([]);

    const panelWith = (...parts: (string | RegExp)[]) =>
      graphs.some((p) => {
        const text = exprsOf(p).join('\n');
        return parts.every((part) => (typeof part === 'string' ? text.includes(part) : part.test(text)));
      });
    const q = (p: number, metric: string) => new RegExp(`histogram_quantile\\(${p}, [^\\n]*${metric}_bucket`);
    expect(panelWith('by (outcome)', 'toolq_tool_calls_total'), 'calls/s by outcome').toBe(true);
    expect(
      panelWith(/by \(tool\)[^\n]*toolq_tool_calls_total[^\n]*\/ sum by \(tool\)/),
      'error rate by tool',
    ).toBe(true);
    expect(
      panelWith(
        q(0.5, 'toolq_tool_duration_seconds'),
        q(0.95, 'toolq_tool_duration_seconds'),
        q(0.99, 'toolq_tool_duration_seconds'),
        'by (tool, le)',
      ),
      'tool duration p50/p95/p99 by tool',
    ).toBe(true);
    expect(panelWith(q(0.95, 'toolq_tool_queue_wait_seconds')), 'queue wait p95').toBe(true);
    expect(
      panelWith(q(0.5, 'toolq_batch_duration_seconds'), q(0.99, 'toolq_batch_duration_seconds')),
      'batch duration',
    ).toBe(true);
    expect(
      panelWith(q(0.5, 'toolq_batch_overhead_seconds'), q(0.99, 'toolq_batch_overhead_seconds')),
      'batch overhead',
    ).toBe(true);
    expect(panelWith('toolq_batch_size_'), 'batch size').toBe(true);
    expect(panelWith('by (pool, state)', 'toolq_queue_jobs'), 'queue depth by state').toBe(true);
    expect(panelWith('by (pool)', 'toolq_workers'), 'workers by pool').toBe(true);
    expect(panelWith('toolq_late_results_total'), 'late results').toBe(true);
    expect(panelWith('by (model, role)', 'toolq_model_tokens_total'), 'model tokens by model/role').toBe(
      true,
    );
  });

  it('is provisioned from the folder compose mounts, against the compose Prometheus', () => {
    const provider = obj(
      list(yamlDoc('grafana/provisioning/dashboards/toolq.yml').providers, 'providers')[0],
      'provider',
    );
    const mounts = list(service('grafana').volumes, 'grafana.volumes').map((v) => String(v).split(':'));
    const dashboards = mounts.find(
      ([source]) => resolve(DEPLOY, source ?? '') === join(DEPLOY, 'grafana/dashboards'),
    );
    expect(at(provider, 'options.path')).toBe(dashboards?.[1]);
    expect(
      mounts.some(
        ([source, target]) => source === './grafana/provisioning' && target === '/etc/grafana/provisioning',
      ),
    ).toBe(true);

    const ds = obj(
      list(yamlDoc('grafana/provisioning/datasources/prometheus.yml').datasources, 'datasources')[0],
      'ds',
    );
    expect(ds.type).toBe('prometheus');
    const url = new URL(str(ds.url, 'url'));
    expect(Object.keys(services)).toContain(url.hostname);
    expect(JSON.stringify(service(url.hostname).ports)).toContain(`:${url.port}`);
    expect(at(ds, 'jsonData.timeInterval')).toBe(
      at(yamlDoc('prometheus/prometheus.yml'), 'global.scrape_interval'),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('kubernetes manifests', () => {
  const kustomization = yamlDoc('k8s/kustomization.yaml');
  const resources = list(kustomization.resources, 'resources').map((r) => str(r, 'resource'));
  const objects = resources.flatMap((file) => yamlDocs(join('k8s', file)).map((d) => obj(d, file)));
  const find = (kind: string, name: string) =>
    obj(
      objects.find((o) => o.kind === kind && at(o, 'metadata.name') === name),
      `${kind} ${name}`,
    );
  const deployments = objects.filter((o) => o.kind === 'Deployment');
  const containersOf = (d: Obj) =>
    list(at(d, 'spec.template.spec.containers'), 'containers').map((c) => obj(c, 'container'));
  const envOf = (c: Obj) => list(c.env ?? [], 'env').map((e) => obj(e, 'env var'));
  const envVar = (c: Obj, name: string) => envOf(c).find((e) => e.name === name);
  const configMap = obj(find('ConfigMap', 'toolq-config').data, 'toolq-config.data');
  const coordinator = find('Deployment', 'toolq-coordinator');
  const worker = find('Deployment', 'toolq-worker');
  const [coordinatorContainer] = containersOf(coordinator);
  const [workerContainer] = containersOf(worker);
  const redisService = find('Service', 'toolq-redis');
  const redisPort = Number(at(list(at(redisService, 'spec.ports'), 'ports')[0], 'port'));
  const secretExample = yamlDocs('k8s/secret.example.yaml').map((d) => obj(d, 'secret'));

  it('lists every manifest in kustomization.yaml except the secret example', () => {
    const manifests = readdirSync(join(DEPLOY, 'k8s')).filter(
      (f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml' && !f.includes('.example.'),
    );
    expect([...resources].sort()).toEqual(manifests.sort());
    expect(resources).not.toContain('secret.example.yaml');
  });

  it('names no namespace in any manifest', () => {
    for (const o of [...objects, ...secretExample])
      expect(at(o, 'metadata.namespace'), String(at(o, 'metadata.name'))).toBeUndefined();
  });

  it.each(deployments.map((d) => [String(at(d, 'metadata.name')), d] as const))(
    '%s selects its pods, has probes on declared ports, resource requests and a memory limit',
    (_name, d) => {
      const podLabels = obj(at(d, 'spec.template.metadata.labels'), 'pod labels');
      expect(podLabels).toMatchObject(obj(at(d, 'spec.selector.matchLabels'), 'matchLabels'));
      for (const c of containersOf(d)) {
        const ports = list(c.ports ?? [], 'ports').map((p) => obj(p, 'port'));
        for (const probe of ['readinessProbe', 'livenessProbe']) {
          const p = obj(c[probe], `${String(c.name)}.${probe}`);
          const port = at(p, 'httpGet.port');
          if (port !== undefined) {
            expect(
              ports.some((cp) => cp.name === port || cp.containerPort === port),
              `${probe} port ${String(port)}`,
            ).toBe(true);
          } else {
            expect(p.exec ?? p.tcpSocket ?? p.grpc, probe).toBeDefined();
          }
        }
        expect(at(c, 'resources.requests.cpu')).toBeDefined();
        expect(at(c, 'resources.requests.memory')).toBeDefined();
        expect(at(c, 'resources.limits.memory')).toBeDefined();
      }
    },
  );

  it('routes each Service to the pods and port of a Deployment', () => {
    for (const svc of objects.filter((o) => o.kind === 'Service')) {
      const selector = obj(at(svc, 'spec.selector'), 'selector');
      const target = deployments.find((d) => {
        const podLabels = obj(at(d, 'spec.template.metadata.labels'), 'pod labels');
        return Object.entries(selector).every(([k, v]) => podLabels[k] === v);
      });
      expect(target, String(at(svc, 'metadata.name'))).toBeDefined();
      const ports = containersOf(obj(target, 'deployment')).flatMap((c) =>
        list(c.ports ?? [], 'ports').map((p) => obj(p, 'port')),
      );
      for (const sp of list(at(svc, 'spec.ports'), 'ports').map((p) => obj(p, 'port'))) {
        expect(ports.some((p) => p.name === sp.targetPort || p.containerPort === sp.targetPort)).toBe(true);
      }
    }
  });

  it('points REDIS_URL at the Redis Service', () => {
    const url = new URL(str(configMap.REDIS_URL, 'REDIS_URL'));
    expect(url.hostname).toBe(at(redisService, 'metadata.name'));
    expect(Number(url.port)).toBe(redisPort);
  });

  it('runs the coordinator on 0.0.0.0 only with the API token from the Secret', () => {
    const c = obj(coordinatorContainer, 'coordinator container');
    expect(c.command ?? c.args).toBeUndefined(); // the image's CMD is the coordinator
    expect(envVar(c, 'TOOLQ_HOST')?.value).toBe('0.0.0.0');
    const token = obj(envVar(c, 'TOOLQ_API_TOKEN'), 'TOOLQ_API_TOKEN');
    expect(token.value).toBeUndefined();
    const ref = obj(at(token, 'valueFrom.secretKeyRef'), 'secretKeyRef');
    expect(ref.optional).not.toBe(true);
    const secret = secretExample.find((s) => at(s, 'metadata.name') === ref.name);
    expect(secret, `example Secret ${String(ref.name)}`).toBeDefined();
    expect(Object.keys(obj(at(secret, 'stringData'), 'stringData'))).toContain(ref.key);
    const port = envVar(c, 'TOOLQ_PORT')?.value;
    expect(list(c.ports, 'ports')).toContainEqual({ name: 'http', containerPort: Number(port) });
  });

  it('gives the coordinator an operator token from its Secret, which the PodMonitor example scrapes with', () => {
    const c = obj(coordinatorContainer, 'coordinator container');
    const operators = str(envVar(c, 'TOOLQ_OPERATOR_TOKENS')?.value, 'TOOLQ_OPERATOR_TOKENS');
    // `name:$(VAR)`: Kubernetes expands VAR, declared before it, from the Secret.
    const variable = /^[A-Za-z0-9_.-]+:\$\(([A-Za-z0-9_]+)\)$/.exec(operators)?.[1];
    const env = list(c.env, 'env').map((e) => obj(e, 'env var'));
    const index = env.findIndex((e) => e.name === variable);
    expect(index, `${String(variable)} before TOOLQ_OPERATOR_TOKENS`).toBeGreaterThanOrEqual(0);
    expect(index).toBeLessThan(env.findIndex((e) => e.name === 'TOOLQ_OPERATOR_TOKENS'));
    const ref = obj(at(env[index], 'valueFrom.secretKeyRef'), 'secretKeyRef');
    expect(ref.optional).not.toBe(true);
    const secret = secretExample.find((s) => at(s, 'metadata.name') === ref.name);
    expect(Object.keys(obj(at(secret, 'stringData'), 'stringData'))).toContain(ref.key);
    // Annotation-based scraping cannot send a token: the coordinator pods carry none.
    expect(JSON.stringify(at(coordinator, 'spec.template.metadata') ?? {})).not.toContain('prometheus.io');

    const monitor = obj(yamlDocs('k8s/podmonitor.example.yaml')[0], 'PodMonitor');
    expect(monitor.kind).toBe('PodMonitor');
    expect(at(monitor, 'spec.selector.matchLabels')).toEqual(at(coordinator, 'spec.selector.matchLabels'));
    const endpoint = obj(list(at(monitor, 'spec.podMetricsEndpoints'), 'endpoints')[0], 'endpoint');
    expect(endpoint.path).toBe('/metrics');
    expect(list(c.ports, 'ports')).toContainEqual(expect.objectContaining({ name: endpoint.port }));
    expect(at(endpoint, 'authorization.credentials')).toEqual({ name: ref.name, key: ref.key });
  });

  it('probes the coordinator and worker on /readyz (readiness) and /healthz (liveness)', () => {
    for (const c of [coordinatorContainer, workerContainer].map((x) => obj(x, 'container'))) {
      expect(at(c, 'readinessProbe.httpGet.path')).toBe('/readyz');
      expect(at(c, 'livenessProbe.httpGet.path')).toBe('/healthz');
    }
  });

  it('gives coordinator and worker a grace period longer than preStop plus their drain time', () => {
    for (const d of [coordinator, worker]) {
      const c = obj(containersOf(d)[0], 'container');
      const preStop = list(at(c, 'lifecycle.preStop.exec.command') ?? [], 'preStop');
      const preStopSeconds = preStop[0] === 'sleep' ? Number(preStop[1]) : 0;
      const drainSeconds = Number(envVar(c, 'TOOLQ_SHUTDOWN_TIMEOUT_MS')?.value) / 1000;
      expect(drainSeconds).toBeGreaterThan(0);
      const grace = Number(at(d, 'spec.template.spec.terminationGracePeriodSeconds'));
      expect(grace, String(at(d, 'metadata.name'))).toBeGreaterThanOrEqual(preStopSeconds + drainSeconds + 5);
    }
    // Traffic reaches coordinators through a Service: they wait for the endpoint removal.
    expect(at(coordinatorContainer, 'lifecycle.preStop.exec.command')).toEqual(['sleep', expect.any(String)]);
  });

  it('runs workers with the worker entry point, exposing the metrics port, scaled by KEDA alone', () => {
    const c = obj(workerContainer, 'worker container');
    expect(c.command).toEqual(nodeCommand(WORKER_ENTRY));
    expect(list(c.args, 'args').slice(0, 1)).toEqual(['--tools']);
    const metricsPort = Number(envVar(c, 'TOOLQ_METRICS_PORT')?.value);
    // Set explicitly: the default (a free loopback port) is reachable by neither probes nor Prometheus.
    expect(metricsPort).toBeGreaterThan(0);
    expect(envVar(c, 'TOOLQ_METRICS_HOST')?.value).toBe('0.0.0.0');
    expect(list(c.ports, 'ports')).toContainEqual({ name: 'metrics', containerPort: metricsPort });
    expect(at(worker, 'spec.template.metadata.annotations')).toMatchObject({
      'prometheus.io/port': String(metricsPort),
    });
    expect(at(worker, 'spec.replicas')).toBeUndefined();
  });

  it('keeps the example tokens placeholders toolq would refuse', () => {
    for (const name of ['toolq-api-token', 'toolq-operator-token']) {
      const secret = obj(
        secretExample.find((s) => at(s, 'metadata.name') === name),
        name,
      );
      const token = str(at(secret, 'stringData.token'), 'token');
      expect(token.length, name).toBeLessThan(MIN_TOKEN_LENGTH);
    }
  });

  describe('KEDA ScaledObject', () => {
    const so = find('ScaledObject', 'toolq-worker');
    const spec = obj(so.spec, 'spec');
    const triggers = list(spec.triggers, 'triggers').map((t) => obj(t, 'trigger'));
    const pool = str(envVar(obj(workerContainer, 'c'), 'TOOLQ_POOL')?.value, 'TOOLQ_POOL');

    it('targets the worker Deployment', () => {
      expect(so.apiVersion).toBe('keda.sh/v1alpha1');
      expect(at(spec, 'scaleTargetRef.name')).toBe(at(worker, 'metadata.name'));
      expect(at(spec, 'scaleTargetRef.kind') ?? 'Deployment').toBe('Deployment');
    });

    it('never scales to zero, since a pool without live workers answers is_error instead of queueing', () => {
      const min = Number(spec.minReplicaCount);
      expect(min).toBeGreaterThanOrEqual(1);
      expect(Number(spec.maxReplicaCount)).toBeGreaterThan(min);
      expect(Number(spec.cooldownPeriod)).toBeGreaterThan(0);
      expect(Number(spec.pollingInterval)).toBeGreaterThan(0);
    });

    it("counts the jobs of the workers' pool, its lanes included, as the coordinators report them", () => {
      expect(triggers.every((t) => t.type === 'prometheus')).toBe(true);
      expect(triggers.map((t) => kedaQueryPools(str(at(t, 'metadata.query'), 'query')))).toEqual([
        [pool],
        [pool],
      ]);
      for (const t of triggers) {
        // Every coordinator reports the same gauge: max across them, never sum.
        expect(at(t, 'metadata.query')).toMatch(/\bmax\b/);
        expect(Number(at(t, 'metadata.threshold'))).toBeGreaterThan(0);
        expect(String(at(t, 'metadata.serverAddress'))).toMatch(/^https?:\/\//);
      }
    });

    it('targets fewer active jobs per worker than its concurrency, so scale-up starts before saturation', () => {
      const concurrency = Number(envVar(obj(workerContainer, 'c'), 'TOOLQ_CONCURRENCY')?.value);
      const active = triggers.find((t) => String(at(t, 'metadata.query')).includes('state="active"'));
      expect(Number(at(active, 'metadata.threshold'))).toBeLessThan(concurrency);
    });
  });

  it.skipIf(!HAS_KUBECTL)('renders with kustomize, in its namespace', () => {
    const r = spawnSync('kubectl', ['kustomize', join(DEPLOY, 'k8s')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const rendered = parseAllDocuments(r.stdout).map((d) => obj(d.toJS(), 'rendered'));
    const namespace = str(kustomization.namespace, 'namespace');
    for (const o of rendered) expect(at(o, 'metadata.namespace')).toBe(namespace);
    expect(rendered.map((o) => o.kind).sort()).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'Deployment',
        'Deployment',
        'PodDisruptionBudget',
        'ScaledObject',
        'Service',
        'Service',
      ].sort(),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  const dockerfile = readDeploy('Dockerfile');
  // Instructions with their continuation lines joined, comments dropped.
  const lines = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const froms = lines.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0);
  const finalAt = froms.at(-1) ?? -1;
  const buildStage = lines.slice(0, finalAt);
  const finalStage = lines.slice(finalAt);
  const installAt = buildStage.findIndex((l) => /^RUN .*pnpm install/.test(l));
  const index = (pattern: RegExp) => buildStage.findIndex((l) => pattern.test(l));
  /** `pnpm deploy --filter <package> --prod <dir>` of the build stage, by package name. */
  const deploys = new Map(
    [...buildStage.join('\n').matchAll(/pnpm deploy --filter (\S+) --prod (\S+)/g)].map((m) => [
      m[1] ?? '',
      m[2] ?? '',
    ]),
  );

  it('builds on Node 20, Debian bookworm slim', () => {
    expect(froms.length).toBeGreaterThan(0);
    for (const i of froms)
      expect(lines[i]).toMatch(/^FROM\s+node:20(\.\d+){0,2}-bookworm-slim(@sha256:[0-9a-f]{64})?(\s|$)/);
  });

  it("pins pnpm to package.json's packageManager version", () => {
    const wanted = /^pnpm@(\d+\.\d+\.\d+)/.exec(rootPackage.packageManager ?? '')?.[1];
    expect(wanted).toBeDefined();
    const pinned = /(?:npm (?:i|install) -g|corepack prepare) pnpm@(\d+\.\d+\.\d+)/.exec(dockerfile)?.[1];
    expect(pinned).toBe(wanted);
  });

  it('builds in a first stage: every dependency from the lockfile, then pnpm build, then pnpm deploy --prod', () => {
    expect(froms.length).toBe(2);
    expect(lines[froms[0] ?? 0]).toMatch(/\sAS\s+build$/i);
    // The lockfile alone fetches every dependency, so no list of workspace manifests is kept here.
    const fetchAt = index(/^RUN .*pnpm fetch/);
    expect(fetchAt).toBeGreaterThan(-1);
    expect(buildStage.slice(0, fetchAt).join('\n')).toMatch(
      /^COPY pnpm-lock\.yaml pnpm-workspace\.yaml \.\/$/m,
    );
    expect(installAt).toBeGreaterThan(fetchAt);
    const install = buildStage[installAt] ?? '';
    expect(install).toContain('--frozen-lockfile');
    expect(install).toContain('--offline');
    // The build needs TypeScript, a devDependency.
    expect(install).not.toMatch(/--prod\b|--production\b/);
    expect(buildStage.slice(0, installAt).join('\n')).not.toMatch(/NODE_ENV[= ]+production/);
    const copyAllAt = index(/^COPY \. \.$/);
    expect(copyAllAt).toBeGreaterThan(fetchAt);
    expect(copyAllAt).toBeLessThan(installAt);
    const buildAt = index(/^RUN pnpm build$/);
    expect(buildAt).toBeGreaterThan(installAt);
    expect(index(/^RUN .*pnpm deploy/)).toBeGreaterThan(buildAt);
    expect([...deploys.keys()].sort()).toEqual(['@toolq/coordinator', '@toolq/worker']);
  });

  it('runs built JavaScript with production dependencies only in the final stage', () => {
    // Nothing is installed or compiled here: only the deployed directories are copied in.
    expect(finalStage.join('\n')).not.toMatch(/pnpm|tsx|typescript|npm install/);
    expect(finalStage).toContain('WORKDIR /app');
    const copies = finalStage.filter((l) => l.startsWith('COPY '));
    expect(copies.sort()).toEqual(
      [...deploys].map(([name, dir]) => `COPY --from=build ${dir} ./${name.replace('@toolq/', '')}`).sort(),
    );
    expect(finalStage.join('\n')).toMatch(/^ENV .*NODE_ENV=production/m);
  });

  it('runs as an unprivileged user, under an init, with the coordinator as the default command', () => {
    const user = finalStage.filter((l) => l.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER\s+(root|0)(:|$)/);
    const entrypoint = JSON.parse(
      (finalStage.find((l) => l.startsWith('ENTRYPOINT ')) ?? 'ENTRYPOINT []').slice(11),
    ) as string[];
    expect(entrypoint[0]).toMatch(/tini$/);
    const cmd = JSON.parse((finalStage.find((l) => l.startsWith('CMD ')) ?? 'CMD []').slice(4)) as string[];
    expect(cmd).toEqual(nodeCommand(COORDINATOR_ENTRY));
  });

  // No Docker engine here: the build stage's own `pnpm deploy` commands run against this checkout,
  // and each deployed directory must start its process under a bare node, as the final stage does.
  it('pnpm deploy --prod gives each process its built bin and production dependencies only', async () => {
    await buildPackages();
    const out = mkdtempSync(join(tmpdir(), 'toolq-image-'));
    try {
      for (const [name, dir] of deploys) {
        const pkg = name.replace('@toolq/', '');
        const target = join(out, pkg);
        await run('pnpm', ['deploy', '--filter', name, '--prod', target], { cwd: ROOT });
        const entry = join(target, packageBin(pkg));
        expect(imageEntry(pkg), `${dir} is copied to /app/${pkg}`).toBe(`/app/${pkg}/${packageBin(pkg)}`);
        for (const dev of ['tsx', 'typescript', 'vitest', '@biomejs/biome', '@types/node']) {
          expect(existsSync(join(target, 'node_modules', dev)), `${pkg}: ${dev}`).toBe(false);
        }
        expect(existsSync(join(target, 'test')), `${pkg} deploys its tests`).toBe(false);
        const { stdout } = await run(process.execPath, [entry, '--help'], {
          cwd: target,
          env: { PATH: process.env.PATH, NODE_ENV: 'production' },
        });
        expect(stdout).toContain(`Usage: toolq-${pkg}`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('keeps host node_modules out of the build context', () => {
    const ignore = readDeploy('Dockerfile.dockerignore');
    expect(ignore).toMatch(/^\*\*\/node_modules$/m);
  });
});

describe('the scale-to-zero example (k8s/keda-scale-to-zero.example.yaml)', () => {
  const docs = yamlDocs('k8s/keda-scale-to-zero.example.yaml').map((d) => obj(d, 'document'));
  const deployment = obj(
    docs.find((d) => d.kind === 'Deployment'),
    'Deployment',
  );
  const so = obj(
    docs.find((d) => d.kind === 'ScaledObject'),
    'ScaledObject',
  );
  const container = obj(list(at(deployment, 'spec.template.spec.containers'), 'containers')[0], 'container');
  const env = new Map(
    list(container.env, 'env').map((e) => [str(at(e, 'name'), 'name'), at(e, 'value')] as const),
  );

  it('lets its pool wait for workers, and only then scales it to zero', () => {
    expect(env.get('TOOLQ_WAIT_FOR_WORKERS')).toBe('true');
    expect(Number(at(so, 'spec.minReplicaCount'))).toBe(0);
    expect(at(so, 'spec.scaleTargetRef.name')).toBe(at(deployment, 'metadata.name'));
  });

  it('probes the metrics address it sets (the default, a free loopback port, is not reachable)', () => {
    expect(env.get('TOOLQ_METRICS_HOST')).toBe('0.0.0.0');
    expect(Number(at(container, 'readinessProbe.httpGet.port'))).toBe(Number(env.get('TOOLQ_METRICS_PORT')));
  });

  it("counts its own pool's jobs, and any waiting call wakes it", () => {
    const pool = str(env.get('TOOLQ_POOL'), 'TOOLQ_POOL');
    expect(pool).not.toBe('default');
    const triggers = list(at(so, 'spec.triggers'), 'triggers');
    expect(triggers.map((t) => kedaQueryPools(str(at(t, 'metadata.query'), 'query')))).toEqual([
      [pool],
      [pool],
    ]);
    expect(at(triggers[0], 'metadata.query')).toContain('waiting');
    expect(at(triggers[0], 'metadata.activationThreshold')).toBe('0');
  });
});

/** The pools a KEDA trigger's query selects (`pool="…"` matchers of toolq_queue_jobs). */
function kedaQueryPools(query: string): string[] {
  expect(query).toMatch(/\btoolq_queue_jobs\{/);
  return [...query.matchAll(/\bpool="([^"]+)"/g)].map((m) => m[1] ?? '');
}
