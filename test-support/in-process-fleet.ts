/**
 * The suite fixture most system tests share: a redis-server of the file's own, in-process workers,
 * a started Dispatcher and a plain Redis connection to look at keys. Registers the file's
 * beforeAll/afterAll hooks; call it once at the top level of a test file and read the parts in tests.
 */
import { Dispatcher, type DispatcherOptions } from '@toolq/coordinator';
import { closeRedis, createRedis, type Redis } from '@toolq/shared/internal';
import { startWorker, type ToolqWorker, type WorkerOptions } from '@toolq/worker';
import { afterAll, beforeAll } from 'vitest';
import { testLogger } from './logger.ts';
import { type RedisServer, startRedisServer } from './redis-server.ts';

export interface InProcessFleetOptions {
  /** One entry a worker; each gets the file's Redis and a test logger. Default: no workers. */
  workers?: readonly Omit<WorkerOptions, 'redisUrl'>[];
  /** More options for the Dispatcher (its Redis and logger are the fixture's). */
  dispatcher?: Omit<DispatcherOptions, 'redisUrl'>;
}

export interface InProcessFleet {
  readonly server: RedisServer;
  /** A connection of the test's own, for reading and writing keys directly. */
  readonly redis: Redis;
  /** In the order of `options.workers`. */
  readonly workers: readonly ToolqWorker[];
  /** The first worker (most files have one). */
  readonly worker: ToolqWorker;
  readonly dispatcher: Dispatcher;
}

export function useInProcessFleet(options: InProcessFleetOptions = {}): InProcessFleet {
  let server: RedisServer | undefined;
  let redis: Redis | undefined;
  let workers: ToolqWorker[] = [];
  let dispatcher: Dispatcher | undefined;

  beforeAll(async () => {
    server = await startRedisServer();
    const url = server.url;
    redis = createRedis(url);
    workers = await Promise.all(
      (options.workers ?? []).map((o) => startWorker({ logger: testLogger(), ...o, redisUrl: url })),
    );
    dispatcher = new Dispatcher({ logger: testLogger(), ...options.dispatcher, redisUrl: url });
    await dispatcher.start();
  });
  afterAll(async () => {
    await dispatcher?.close();
    await Promise.all(workers.map((w) => w.close()));
    if (redis) await closeRedis(redis);
    await server?.stop();
  });

  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the fleet fixture is used before its beforeAll ran');
    return value;
  };
  return {
    get server() {
      return started(server);
    },
    get redis() {
      return started(redis);
    },
    get workers() {
      started(server);
      return workers;
    },
    get worker() {
      return started(workers[0]);
    },
    get dispatcher() {
      return started(dispatcher);
    },
  };
}
