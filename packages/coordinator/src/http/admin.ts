/**
 * The queue admin page: bull-board at /admin/queues, listing the BullMQ queues (each pool's, and
 * its lanes) that the worker catalog knows. It shows every app's queued tool inputs, so it is for
 * operators: with tokens set, the server's auth hook lets only an operator token
 * (TOOLQ_OPERATOR_TOKENS) in, and an app token gets 403; without tokens it is open on loopback like
 * the rest. It is read-only unless `write` is on: bull-board's own read-only mode, and besides it
 * every method but GET/HEAD under the prefix is refused, so a future bull-board route cannot slip
 * a write through. Its page size is capped, and nothing it serves loads from outside the machine.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { ToolqError } from '@toolq/shared';
import { type WorkerInfo, withTimeout } from '@toolq/shared/internal';
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from '../dispatcher.ts';
import { toHttpError } from './errors.ts';

export const ADMIN_PATH = '/admin/queues';

/**
 * Most jobs one listing returns. bull-board takes any `jobsPerPage` (its own settings offer up to
 * 300): 100000 answered 103 MB and took the coordinator from 351 MB to 1.2 GB.
 */
export const ADMIN_MAX_JOBS_PER_PAGE = 100;

/**
 * Only this machine: bull-board's page asks Google Fonts for its typeface (the link is also
 * stripped, below), and the page shows job data that a script could otherwise send away.
 * Inline styles stay: its loading screen uses them. Its one inline script is a JSON data block,
 * which CSP does not govern.
 */
export const ADMIN_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Most characters of one job's data or return value the admin API shows: a page of 100 jobs with
 * 10 MB inputs would otherwise answer 1 GB. Longer values are shown as their start and size.
 */
export const ADMIN_MAX_SHOWN_CHARS = 65_536;

/** bull-board's index.html loads IBM Plex from Google Fonts; the page falls back to system fonts. */
const EXTERNAL_STYLESHEET = /<link\b[^>]*\bhref="https?:\/\/[^"]*"[^>]*>/gi;

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
        const tools = lane ? laneTools(dispatcher.catalog.liveWorkers(), lane) : [];
        return new BullMQAdapter(bull, {
          readOnlyMode: !write,
          allowRetries: write,
          displayName: lane
            ? `pool ${pool}, lane ${lane}: ${listNames(tools, LANE_NAMES_SHOWN)}`
            : `pool ${pool}`,
          description: lane
            ? `BullMQ queue ${bull.name}: calls of pool ${pool} for the workers serving exactly these tools: ` +
              listNames(tools, LANE_NAMES_DESCRIBED)
            : `BullMQ queue ${bull.name} of the workers serving pool ${pool}: calls of the tools they all serve: ` +
              listNames(poolTools(dispatcher.catalog.liveWorkers(), pool), LANE_NAMES_DESCRIBED),
        });
      }),
    );
  };

  app.register(
    async (admin) => {
      admin.addHook('onRequest', async (request, reply) => {
        reply.header('content-security-policy', ADMIN_CSP);
        if (!write && request.method !== 'GET' && request.method !== 'HEAD') {
          throw new ToolqError('READ_ONLY', 'the queue admin page is read-only (set TOOLQ_ADMIN_WRITE=true)');
        }
        capPageSize(request.query);
        await syncQueues();
      });
      admin.addHook('onSend', async (_request, reply, payload) => {
        if (typeof payload !== 'string') return payload;
        const type = String(reply.getHeader('content-type'));
        if (type.startsWith('text/html')) return payload.replace(EXTERNAL_STYLESHEET, '');
        if (type.startsWith('application/json') && payload.length > ADMIN_MAX_SHOWN_CHARS)
          return clipJobs(payload);
        return payload;
      });
      await admin.register(serverAdapter.registerPlugin());
    },
    { prefix: ADMIN_PATH },
  );
}

/** Tool names a lane's name shows on the page (its hash says nothing to a person); the rest are counted. */
const LANE_NAMES_SHOWN = 6;
/** Tool names its description lists (an MCP server may bring thousands). */
const LANE_NAMES_DESCRIBED = 200;

/**
 * The tools a lane serves: every live worker of a lane serves exactly the same tools (its name is a
 * hash of them, shared/lanes.ts), so the first one's are the lane's.
 */
function laneTools(workers: readonly WorkerInfo[], lane: string): string[] {
  const worker = workers.find((w) => w.lane === lane);
  return (worker?.tools ?? []).map((t) => t.name).sort();
}

/** The tools every live worker of a pool serves: the calls its shared queue gets (shared/lanes.ts). */
function poolTools(workers: readonly WorkerInfo[], pool: string): string[] {
  const sets = workers.filter((w) => w.pool === pool).map((w) => new Set(w.tools.map((t) => t.name)));
  const [first, ...rest] = sets;
  return [...(first ?? [])].filter((name) => rest.every((set) => set.has(name))).sort();
}

/** `a, b, c` or `a, b, … and 7 more`; `no live worker` for none. */
function listNames(names: readonly string[], max: number): string {
  if (names.length === 0) return 'no live worker';
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Lowers `jobsPerPage` to the cap in place: bull-board's handler reads the parsed query after this hook. */
function capPageSize(query: unknown): void {
  if (typeof query !== 'object' || query === null || !('jobsPerPage' in query)) return;
  const q = query as { jobsPerPage: unknown };
  // `?jobsPerPage=5&jobsPerPage=100000` parses as a list: the first one counts, as a string.
  if (Array.isArray(q.jobsPerPage)) q.jobsPerPage = String(q.jobsPerPage[0]);
  const asked = Number(q.jobsPerPage);
  // Anything that is not a number bull-board refuses itself (400).
  if (Number.isFinite(asked) && asked > ADMIN_MAX_JOBS_PER_PAGE)
    q.jobsPerPage = String(ADMIN_MAX_JOBS_PER_PAGE);
}

/** A job listing with each job's data and return value cut to ADMIN_MAX_SHOWN_CHARS. */
function clipJobs(payload: string): string {
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return payload;
  }
  const queues = (body as { queues?: unknown }).queues;
  if (!Array.isArray(queues)) return payload;
  for (const queue of queues as { jobs?: unknown }[]) {
    if (!Array.isArray(queue.jobs)) continue;
    for (const job of queue.jobs as Record<string, unknown>[]) {
      for (const field of ['data', 'returnValue']) {
        if (job[field] === undefined) continue;
        const text = typeof job[field] === 'string' ? job[field] : JSON.stringify(job[field]);
        if (text.length <= ADMIN_MAX_SHOWN_CHARS) continue;
        job[field] = {
          clipped: `only the first ${ADMIN_MAX_SHOWN_CHARS} of ${text.length} characters are shown`,
          start: text.slice(0, ADMIN_MAX_SHOWN_CHARS),
        };
      }
    }
  }
  return JSON.stringify(body);
}
