/**
 * A real Prometheus (Debian's `prometheus` binary) for tests: its own config, TSDB in a temp dir,
 * a free loopback port, stopped by its own process id.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../../../test-support/free-port.ts';

export interface ScrapeJob {
  name: string;
  /** host:port */
  targets: string[];
  metricsPath?: string;
  bearerToken?: string;
}

export interface PrometheusServer {
  readonly url: string;
  /** GET /api/v1/<path> with query parameters; throws unless status is "success". */
  api<T>(path: string, params?: Record<string, string | string[]>): Promise<T>;
  stop(): Promise<void>;
}

export const hasPrometheus = (): boolean =>
  spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;

export async function startPrometheus(options: {
  jobs: ScrapeJob[];
  ruleFiles?: string[];
  /** Seconds; scrapes and rule evaluations. Default 1. */
  intervalSeconds?: number;
}): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'toolq-prometheus-'));
  const interval = `${options.intervalSeconds ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: options.jobs.map((job, i) => {
      let authorization: { type: string; credentials_file: string } | undefined;
      if (job.bearerToken) {
        const file = join(dir, `token-${i}`);
        writeFileSync(file, job.bearerToken, { mode: 0o600 });
        authorization = { type: 'Bearer', credentials_file: file };
      }
      return {
        job_name: job.name,
        metrics_path: job.metricsPath ?? '/metrics',
        ...(authorization ? { authorization } : {}),
        static_configs: [{ targets: job.targets }],
      };
    }),
  };
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready in 30 s: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    api: async <T>(path: string, params: Record<string, string | string[]> = {}) => {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(params))
        for (const v of Array.isArray(value) ? value : [value]) query.append(key, v);
      const res = await fetch(`${url}/api/v1/${path}?${query}`);
      const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
      if (body.status !== 'success')
        throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
      return body.data;
    },
    stop,
  };
}
