/**
 * The queue admin page: bull-board at /admin/queues, listing the BullMQ queues (each pool's, and
 * its lanes) that the worker catalog knows. It sits behind the API's bearer token (the server's auth hook covers every
 * path but the probes and /metrics), and is read-only unless `write` is on: bull-board's own
 * read-only mode, and besides it every method but GET/HEAD under the prefix is refused, so a
 * future bull-board route cannot slip a write through.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { withTimeout } from '@toolq/shared/internal';
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from '../dispatcher.ts';
import { toHttpError } from './errors.ts';

export const ADMIN_PATH = '/admin/queues';

export interface AdminOptions {
  dispatcher: Dispatcher;
  /** Retries, removals, promotions and cleaning from the page (env TOOLQ_ADMIN_WRITE=true). Default false. */
  write?: boolean;
}

export function registerAdmin(app: FastifyInstance, options: AdminOptions): void {
  const { dispatcher } = options;
  const write = options.write ?? false;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(ADMIN_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: {
      uiConfig: { boardTitle: write ? 'toolq queues' : 'toolq queues (read-only)', hideDocsLink: true },
    },
  });

  // bull-board answers errors in its routes' scope itself (500 unless the error has a statusCode):
  // toolq's own (401 from the auth hook, 503 when Redis is away) keep their status and envelope.
  // Its type lists fewer statuses than HTTP has; the adapter sends whatever number it is given.
  serverAdapter.setErrorHandler((error) => {
    const { status, body } = toHttpError(error);
    return { status: status as 500, body };
  });

  // Pools come and go with their workers: the board follows the catalog before each request.
  let shown = '';
  let syncedAt = 0;
  const syncQueues = async () => {
    // A page load fetches a dozen assets: one catalog read per second is plenty.
    if (Date.now() - syncedAt < 1_000) return;
    syncedAt = Date.now();
    // Redis down: the page still loads with the pools last seen (its API calls then fail).
    const refreshed = await withTimeout(
      dispatcher.catalog.refresh().then(() => true),
      2_000,
      () => false,
      { unref: true },
    ).catch(() => false);
    if (!refreshed) return;
    const pools = new Set(dispatcher.catalog.liveWorkers().map((w) => w.pool));
    for (const tool of dispatcher.catalog.list()) for (const pool of tool.pools) pools.add(pool);
    // A pool's jobs wait in its own queue and, while its workers serve different tools, in lanes.
    const queues = [...pools].sort().flatMap((pool) => [
      { queue: pool, pool, lane: undefined as string | undefined },
      ...dispatcher.catalog
        .lanesOf(pool)
        .sort()
        .map((lane) => ({ queue: lane, pool, lane })),
    ]);
    const key = queues.map((q) => q.queue).join('\n');
    if (key === shown) return;
    shown = key;
    board.replaceQueues(
      queues.map(({ queue, pool, lane }) => {
        const bull = dispatcher.queueFor(queue);
        return new BullMQAdapter(bull, {
          readOnlyMode: !write,
          allowRetries: write,
          displayName: lane ? `pool ${pool}, lane ${lane}` : `pool ${pool}`,
          description: lane
            ? `BullMQ queue ${bull.name}: calls of pool ${pool} for the workers serving exactly this tool set`
            : `BullMQ queue ${bull.name} of the workers serving pool ${pool}`,
        });
      }),
    );
  };

  app.register(
    async (admin) => {
      admin.addHook('onRequest', async (request, reply) => {
        if (!write && request.method !== 'GET' && request.method !== 'HEAD') {
          return reply.code(403).send({
            error: {
              code: 'READ_ONLY',
              message: 'the queue admin page is read-only (set TOOLQ_ADMIN_WRITE=true)',
            },
          });
        }
        await syncQueues();
      });
      await admin.register(serverAdapter.registerPlugin());
    },
    { prefix: ADMIN_PATH },
  );
}
