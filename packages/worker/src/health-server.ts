import Fastify, { type FastifyInstance } from 'fastify';
import type { ToolqWorker } from './worker.ts';

/** `/metrics` for Prometheus, `/healthz` (process up) and `/readyz` (Redis answers, worker runs). */
export async function startHealthServer(options: {
  worker: ToolqWorker;
  host: string;
  port: number;
}): Promise<{ server: FastifyInstance; url: string; listen: string }> {
  const { worker } = options;
  const server = Fastify({ logger: false });
  server.get('/healthz', async () => ({ ok: true }));
  server.get('/readyz', async (_req, reply) => {
    const reason = await worker.readiness();
    return reply.code(reason ? 503 : 200).send(reason ? { ready: false, reason } : { ready: true });
  });
  server.get('/metrics', async (_req, reply) => {
    reply.header('content-type', worker.registry.contentType);
    return worker.registry.metrics();
  });
  // Fastify answers with one reachable URL (127.0.0.1 for 0.0.0.0); the log must say what is bound.
  const url = await server.listen({ host: options.host, port: options.port });
  const port = new URL(url).port;
  const listen = options.host.includes(':') ? `[${options.host}]:${port}` : `${options.host}:${port}`;
  return { server, url, listen };
}
