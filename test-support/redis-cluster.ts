/**
 * A real Redis Cluster for tests: 3 masters with one replica each, six redis-server processes on
 * free loopback ports (data port and bus port both chosen free), each in its own temp dir, with a
 * password on every node (so the tests prove REDIS_PASSWORD reaches every connection).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisConnectionConfig } from '@toolq/shared';
import { freePort } from './free-port.ts';
import {
  adminCommand,
  infoFields,
  type RedisAccess,
  RedisExitedAtStart,
  type RedisProcess,
  redisProcess,
  run,
} from './redis-processes.ts';
import { type TestTls, tlsServerArgs } from './tls.ts';
import { waitFor } from './wait-for.ts';

export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** A replica's master id. */
  masterId: string | undefined;
  failed: boolean;
  /** Slot ranges a master serves. */
  slots: [number, number][];
}

export interface RedisCluster {
  readonly password: string;
  readonly nodes: readonly RedisProcess[];
  /** The connection config toolq's factory takes (what REDIS_CLUSTER_NODES + REDIS_PASSWORD parse to). */
  readonly config: RedisConnectionConfig;
  /** The environment a toolq process needs to use this cluster. */
  readonly env: Record<string, string>;
  /** A plain (non-cluster) URL of one node, for tests of what a standalone client sees. */
  urlOf(port: number): string;
  command(port: number, command: readonly (string | number)[]): Promise<unknown>;
  /** The cluster as a live node sees it. */
  topology(): Promise<ClusterNodeInfo[]>;
  keySlot(key: string): Promise<number>;
  /** The master serving a key's slot now. */
  masterOf(key: string): Promise<ClusterNodeInfo>;
  replicaOf(master: ClusterNodeInfo): Promise<ClusterNodeInfo>;
  processOf(port: number): RedisProcess;
  /** Every live node says cluster_state:ok, three masters serve all slots, every replica's link is up. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const PASSWORD = 'cluster-test-secret-4c1d';

export async function startRedisCluster(
  options: {
    nodeTimeoutMs?: number;
    /** TLS only: clients, replication and the cluster bus (`tls-cluster yes`). */
    tls?: TestTls;
  } = {},
): Promise<RedisCluster> {
  const { tls } = options;
  const access: RedisAccess = { password: PASSWORD, tls: tls ? { ca: tls.ca } : undefined };
  const dirs: string[] = [];
  const nodes: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  // A node on two free ports; a port taken between freePort() and the bind makes redis-server exit
  // at once, and the node is tried again on other ports (a suite once failed to start that way).
  const startNode = async (dir: string): Promise<RedisProcess> => {
    for (let attempt = 1; ; attempt++) {
      const [port, busPort] = [await freePort(), await freePort()];
      // masterauth lets a replica sync from its master.
      // biome-ignore format: one flag and its value per pair
      const args = [
        ...(tls ? [...tlsServerArgs(tls, port), '--tls-replication', 'yes', '--tls-cluster', 'yes'] : ['--port', String(port)]),
        '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 2_000),
        '--appendonly', 'yes', '--save', '', '--repl-diskless-sync-delay', '0',
        '--requirepass', PASSWORD, '--masterauth', PASSWORD,
      ];
      const node = redisProcess(port, args, access);
      try {
        await node.start();
        return node;
      } catch (err) {
        if (!(err instanceof RedisExitedAtStart) || attempt === 3) throw err;
      }
    }
  };
  try {
    for (let i = 0; i < 6; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'toolq-cluster-'));
      dirs.push(dir);
      nodes.push(await startNode(dir));
    }
    // biome-ignore format: one flag and its value per pair
    await run('redis-cli', [
      '-a', PASSWORD, '--no-auth-warning', ...(tls ? ['--tls', '--cacert', tls.caFile] : []), '--cluster', 'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', '1', '--cluster-yes',
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  const command = (port: number, cmd: readonly (string | number)[]) => adminCommand(port, access, cmd);
  const livePort = () => {
    const live = nodes.find((n) => n.isRunning);
    if (!live) throw new Error('no cluster node is running');
    return live.port;
  };
  const topology = async (port = livePort()) =>
    parseClusterNodes(String(await command(port, ['cluster', 'nodes'])));
  const keySlot = async (key: string) => Number(await command(livePort(), ['cluster', 'keyslot', key]));

  const cluster: RedisCluster = {
    password: PASSWORD,
    nodes,
    config: {
      mode: 'cluster',
      nodes: nodes.slice(0, 3).map((n) => ({ host: '127.0.0.1', port: n.port })),
      password: PASSWORD,
      ...(tls ? { tls: { ca: tls.ca } } : {}),
    },
    env: {
      REDIS_CLUSTER_NODES: nodes
        .slice(0, 3)
        .map((n) => `127.0.0.1:${n.port}`)
        .join(','),
      REDIS_PASSWORD: PASSWORD,
      ...(tls ? { REDIS_TLS_CA_FILE: tls.caFile } : {}),
    },
    urlOf: (port) => `${tls ? 'rediss' : 'redis'}://:${PASSWORD}@127.0.0.1:${port}`,
    command,
    topology: () => topology(),
    keySlot,
    masterOf: async (key) => {
      const slot = await keySlot(key);
      const owner = (await topology()).find(
        (n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b),
      );
      if (!owner) throw new Error(`no master serves slot ${slot} (${key})`);
      return owner;
    },
    replicaOf: async (master) => {
      const replica = (await topology()).find(
        (n) => n.role === 'replica' && n.masterId === master.id && !n.failed,
      );
      if (!replica) throw new Error(`master ${master.port} has no live replica`);
      return replica;
    },
    processOf: (port) => {
      const node = nodes.find((n) => n.port === port);
      if (!node) throw new Error(`no cluster node on port ${port}`);
      return node;
    },
    waitHealthy: async (timeoutMs = 30_000) => {
      await waitFor(
        'the cluster to be healthy (state ok, 3 masters, the other nodes their replicas in sync)',
        async () => {
          const live = nodes.filter((n) => n.isRunning);
          for (const node of live) {
            const info = infoFields(await command(node.port, ['cluster', 'info']));
            if (info.get('cluster_state') !== 'ok' || info.get('cluster_slots_ok') !== '16384') return false;
            const view = await topology(node.port);
            const masters = view.filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0);
            const replicas = view.filter((n) => n.role === 'replica' && !n.failed);
            // Every live node knows the same roles: three serving masters, the rest their replicas.
            if (masters.length !== 3 || replicas.length !== live.length - 3) return false;
          }
          for (const node of (await topology()).filter((n) => n.role === 'replica' && !n.failed)) {
            if (!live.some((n) => n.port === node.port)) continue;
            const repl = infoFields(await command(node.port, ['info', 'replication']));
            if (repl.get('master_link_status') !== 'up') return false;
          }
          return true;
        },
        timeoutMs,
      );
    },
    stop,
  };
  try {
    await cluster.waitHealthy(60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return cluster;
}

/** `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…` */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '', , , , , ...slots] = line.trim().split(' ');
      const flagSet = new Set(flags.split(','));
      return {
        id,
        port: Number(address.split('@')[0]?.split(':').pop()),
        role: flagSet.has('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        failed: flagSet.has('fail') || flagSet.has('fail?') || flagSet.has('noaddr'),
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s): [number, number] => {
            const [a, b] = s.split('-').map(Number);
            return [a ?? 0, b ?? a ?? 0];
          }),
      };
    });
}

/**
 * The first name `make(i)` whose hash tag (`<prefix>{<name>}:x`) lies on a master for which
 * `wanted` says yes: to put a pool, a coordinator's records or a tool's queue on the master a test
 * means to kill (or to spare).
 */
export async function tagOn(
  cluster: RedisCluster,
  prefix: string,
  wanted: (masterPort: number) => boolean,
  make: (i: number) => string,
): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const name = make(i);
    if (wanted((await cluster.masterOf(`${prefix}{${name}}:x`)).port)) return name;
  }
  throw new Error('no candidate name on the wanted master');
}
