import Fastify, { type FastifyInstance } from 'fastify';
import type { ToolqWorker } from './worker.ts';

/** `/metrics` for Prometheus, `/healthz` (process up) and `/readyz` (Redis answers, worker runs). */
export async function startHealthServer(options: {
  worker: ToolqWorker;
  host: string;
  port: number;
}): Promise<{ server: FastifyInstance; url: string }> {
  const { worker } = options;
  const server = Fastify({ logger: false });
  server.get('/healthz', async () => ({ ok: true }));
  server.get('/readyz', async (_req, reply) => {
    const ready = await worker.isReady();
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  server.get('/metrics', async (_req, reply) => {
    reply.header('content-type', worker.registry.contentType);
    return worker.registry.metrics();
  });
  const url = await server.listen({ host: options.host, port: options.port });
  return { server, url };
}
