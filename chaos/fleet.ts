/**
 * The chaos run's fleet as real processes: Redis (one server, or a 6-node Cluster), worker and
 * coordinator CLIs, and the faults done to them. Every fault is logged to the history with the
 * pid it hit and the window it held.
 *
 * The CLIs run built (dist/, plain node): a process restarted by a fault compiles no TypeScript,
 * which on a loaded 2-core machine took seconds of CPU from every other process of the run. Each
 * preloads stalls.mjs and records its event-loop stalls to the history.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startCoordinatorProcess } from '../test-support/coordinator-process.ts';
import { freePort } from '../test-support/free-port.ts';
import { type RedisCluster, startRedisCluster } from '../test-support/redis-cluster.ts';
import { adminCommand, type RedisProcess, redisProcess } from '../test-support/redis-processes.ts';
import { stopChild } from '../test-support/stop-child.ts';
import { startWorkerProcess, type WorkerProcess } from '../test-support/worker-process.ts';
import type { PlannedFault } from './faults.ts';
import type { EventOf } from './history.ts';

const TOOLS = fileURLToPath(new URL('./tools.mjs', import.meta.url));
const WATCH_STALLS = [
  '--import',
  pathToFileURL(fileURLToPath(new URL('./stalls.mjs', import.meta.url))).href,
];
/** Loud enough for a crash, quiet about the reconnects every fault causes. */
const LOG_LEVEL = process.env.TOOLQ_CHAOS_LOG_LEVEL ?? 'fatal';

export interface FleetOptions {
  dir: string;
  cluster: boolean;
  /** Standalone Redis only: `aof` (appendonly, fsync every second) or `none`. */
  persistence: 'aof' | 'none';
  workers: number;
  coordinators: number;
  /** The model each coordinator slot asks (one scripted model per slot: its asks name it). */
  modelUrls: string[];
  takeoverMs: number;
}

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;

interface CoordinatorSlot {
  readonly id: string;
  readonly port: number;
  readonly url: string;
  proc: Coordinator;
}

export class Fleet {
  private readonly workerSlots: { proc: WorkerProcess; gen: number }[] = [];
  private readonly coordinatorSlots: CoordinatorSlot[] = [];
  private redis: RedisProcess | undefined;
  private redisDir: string | undefined;
  private cluster: RedisCluster | undefined;
  private redisEnv: Record<string, string> = {};

  private constructor(private readonly options: FleetOptions) {}

  static async start(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    try {
      await fleet.startRedis();
      for (let i = 0; i < options.workers; i++)
        fleet.workerSlots.push({ proc: await fleet.startWorker(i, 0), gen: 0 });
      for (let i = 0; i < options.coordinators; i++) {
        const port = await freePort();
        const id = `chaos-c${i}`;
        fleet.coordinatorSlots.push({
          id,
          port,
          url: `http://127.0.0.1:${port}`,
          proc: await fleet.startCoordinator(id, port, fleet.modelUrl(i)),
        });
      }
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  private modelUrl(slot: number): string {
    const url = this.options.modelUrls[slot];
    if (!url) throw new Error(`no model URL for coordinator ${slot}`);
    return url;
  }

  get coordinatorUrls(): readonly string[] {
    return this.coordinatorSlots.map((c) => c.url);
  }

  describe(): string {
    const redis = this.cluster
      ? `Redis Cluster (3 masters, 3 replicas, AOF) on ports ${this.cluster.nodes.map((n) => n.port).join(',')}`
      : `Redis ${this.redis?.port} (persistence: ${this.options.persistence})`;
    return `${redis}; ${this.workerSlots.length} workers; ${this.coordinatorSlots.length} coordinators (${this.coordinatorUrls.join(', ')})`;
  }

  private async startRedis(): Promise<void> {
    if (this.options.cluster) {
      this.cluster = await startRedisCluster({ nodeTimeoutMs: 2_000 });
      this.redisEnv = { ...this.cluster.env };
      const first = this.cluster.nodes[0];
      if (first) this.redisEnv.REDIS_URL = this.cluster.urlOf(first.port);
      return;
    }
    const port = await freePort();
    this.redisDir = mkdtempSync(join(tmpdir(), 'toolq-chaos-redis-'));
    // AOF fsync'd every second: a SIGKILLed redis-server keeps what it wrote to the kernel.
    const persistence =
      this.options.persistence === 'aof'
        ? ['--appendonly', 'yes', '--appendfsync', 'everysec']
        : ['--appendonly', 'no'];
    this.redis = redisProcess(port, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      ...persistence,
      '--dir',
      this.redisDir,
    ]);
    await this.redis.start();
    this.redisEnv = { REDIS_URL: `redis://127.0.0.1:${port}` };
  }

  private startWorker(slot: number, gen: number): Promise<WorkerProcess> {
    return startWorkerProcess({
      redisUrl: this.redisEnv.REDIS_URL ?? '',
      tools: TOOLS,
      concurrency: 4,
      built: true,
      nodeArgs: WATCH_STALLS,
      env: {
        ...this.redisEnv,
        TOOLQ_LOG_LEVEL: LOG_LEVEL,
        TOOLQ_CHAOS_LOG: join(this.options.dir, `tools-w${slot}-${gen}.jsonl`),
        TOOLQ_CHAOS_STALLS: join(this.options.dir, `tools-w${slot}-${gen}.jsonl`),
        TOOLQ_CHAOS_PROC: `worker:${slot}`,
      },
    });
  }

  private startCoordinator(id: string, port: number, modelUrl: string): Promise<Coordinator> {
    return startCoordinatorProcess(
      {
        ...this.redisEnv,
        TOOLQ_CHAOS_STALLS: join(this.options.dir, `coordinator-${id}.jsonl`),
        TOOLQ_CHAOS_PROC: `http://127.0.0.1:${port}`,
        TOOLQ_LOG_LEVEL: LOG_LEVEL,
        TOOLQ_COORDINATOR_ID: id,
        TOOLQ_RUN_TAKEOVER_MS: String(this.options.takeoverMs),
        ANTHROPIC_API_KEY: 'chaos-key',
        ANTHROPIC_BASE_URL: modelUrl,
      },
      { port, built: true, nodeArgs: WATCH_STALLS },
    );
  }

  /** Injects one fault and undoes it; resolves with its history line once the fleet is whole again. */
  async inject(fault: PlannedFault): Promise<EventOf<'fault'>> {
    const at = Date.now();
    const done = (target: string, pid?: number): EventOf<'fault'> => ({
      type: 'fault',
      kind: fault.kind,
      target,
      ...(pid === undefined ? {} : { pid }),
      at,
      until: Date.now(),
    });
    switch (fault.kind) {
      case 'worker_kill': {
        const slot = this.workerSlots[fault.slot % this.workerSlots.length];
        if (!slot) throw new Error('no worker');
        const pid = slot.proc.child.pid;
        slot.proc.child.kill('SIGKILL');
        await slot.proc.exited;
        slot.gen++;
        slot.proc = await this.startWorker(fault.slot, slot.gen);
        return done(`worker:${fault.slot}`, pid);
      }
      case 'worker_stop': {
        const slot = this.workerSlots[fault.slot % this.workerSlots.length];
        if (!slot) throw new Error('no worker');
        slot.proc.child.kill('SIGSTOP');
        await sleep(fault.holdMs);
        slot.proc.child.kill('SIGCONT');
        return done(`worker:${fault.slot}`, slot.proc.child.pid);
      }
      case 'coordinator_kill': {
        const slot = this.coordinatorSlots[fault.slot % this.coordinatorSlots.length];
        if (!slot) throw new Error('no coordinator');
        const pid = slot.proc.child.pid;
        slot.proc.child.kill('SIGKILL');
        await slot.proc.exited;
        // Same id and port: it finds its reply stream again, and callers find it where it was.
        slot.proc = await this.startCoordinator(
          slot.id,
          slot.port,
          this.modelUrl(fault.slot % this.coordinatorSlots.length),
        );
        return done(slot.url, pid);
      }
      case 'redis_restart': {
        const redis = this.redis;
        if (!redis) throw new Error('redis_restart needs a standalone Redis');
        await redis.kill();
        await sleep(fault.holdMs);
        await redis.start();
        return done('redis');
      }
      case 'cluster_master_kill': {
        const cluster = this.cluster;
        if (!cluster) throw new Error('cluster_master_kill needs --cluster');
        const masters = (await cluster.topology())
          .filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0)
          .sort((a, b) => a.port - b.port);
        const master = masters[fault.slot % masters.length];
        if (!master) throw new Error('no master');
        const node = cluster.processOf(master.port);
        await node.kill();
        await sleep(fault.holdMs);
        await node.start();
        // Back as a replica of the one that took over; the next fault waits for a healthy cluster.
        await cluster.waitHealthy(30_000).catch(() => undefined);
        return done(`redis:${master.port}`);
      }
      case 'client_pause': {
        const ports = this.cluster
          ? (await this.cluster.topology()).filter((n) => n.role === 'master' && !n.failed).map((n) => n.port)
          : [this.redis?.port ?? 0];
        const access = this.cluster ? this.cluster.password : undefined;
        await Promise.all(
          ports.map((p) => adminCommand(p, access, ['client', 'pause', fault.holdMs, 'ALL'])),
        );
        await sleep(fault.holdMs);
        return done('redis');
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.coordinatorSlots.map((c) => stopChild(c.proc.child, 'SIGTERM', 5_000)));
    await Promise.all(this.workerSlots.map((w) => stopChild(w.proc.child, 'SIGTERM', 5_000)));
    await this.cluster?.stop();
    await this.redis?.kill();
    if (this.redisDir) rmSync(this.redisDir, { recursive: true, force: true });
  }
}
