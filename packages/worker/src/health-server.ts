import type { Registry } from '@toolq/shared/internal';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ToolqWorker } from './worker.ts';

/** What the server reports on: a running worker, or (started before it) its registry and readiness. */
export type HealthSource =
  | { worker: ToolqWorker }
  | { registry: Registry; readiness: () => Promise<string | undefined> };

/** `/metrics` for Prometheus, `/healthz` (process up) and `/readyz` (Redis answers, worker runs). */
export async function startHealthServer(
  options: HealthSource & { host: string; port: number },
): Promise<{ server: FastifyInstance; url: string; listen: string }> {
  const { registry, readiness } =
    'worker' in options
      ? { registry: options.worker.registry, readiness: () => options.worker.readiness() }
      : options;
  const server = Fastify({ logger: false });
  server.get('/healthz', async () => ({ ok: true }));
  server.get('/readyz', async (_req, reply) => {
    const reason = await readiness();
    return reply.code(reason ? 503 : 200).send(reason ? { ready: false, reason } : { ready: true });
  });
  server.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  // Fastify answers with one reachable URL (127.0.0.1 for 0.0.0.0); the log must say what is bound.
  const url = await server.listen({ host: options.host, port: options.port });
  const port = new URL(url).port;
  const listen = options.host.includes(':') ? `[${options.host}]:${port}` : `${options.host}:${port}`;
  return { server, url, listen };
}
