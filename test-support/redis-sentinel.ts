/**
 * A real Sentinel setup for tests: a master with two replicas watched by three sentinels, all
 * redis-server processes on free loopback ports in temp dirs (each sentinel with its own writable
 * config file, which it rewrites), `down-after-milliseconds` 1 s. Optionally with passwords (one
 * for the data nodes, another for the sentinels) and TLS everywhere (no plain ports at all).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisConnectionConfig } from '@toolq/shared';
import { freePort } from './free-port.ts';
import {
  adminCommand,
  infoFields,
  type RedisAccess,
  type RedisProcess,
  redisProcess,
} from './redis-processes.ts';
import { type TestTls, tlsServerArgs } from './tls.ts';
import { waitFor } from './wait-for.ts';

export const SENTINEL_MASTER = 'toolq-test';

export interface RedisSentinelSetup {
  readonly dataNodes: readonly RedisProcess[];
  readonly sentinels: readonly RedisProcess[];
  readonly config: RedisConnectionConfig;
  readonly env: Record<string, string>;
  /** The master's port as the sentinels report it now. */
  masterPort(): Promise<number>;
  processOf(port: number): RedisProcess;
  command(port: number, command: readonly (string | number)[]): Promise<unknown>;
  /** Every sentinel names `port` as master and knows the other sentinels; the live replicas are in sync with it. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisSentinelOptions {
  /** `requirepass` (and `masterauth`) of the master and replicas; the sentinels' `auth-pass`. */
  password?: string;
  /** The sentinels' own `requirepass` (and `sentinel-pass`, which they use with each other). */
  sentinelPassword?: string;
  /** TLS only, on every port: clients, replication, sentinels to nodes and to each other. */
  tls?: TestTls;
}

export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelSetup> {
  const { password, sentinelPassword, tls } = options;
  const tlsAccess = tls ? { ca: tls.ca } : undefined;
  const nodeAccess: RedisAccess = { password, tls: tlsAccess };
  const sentinelAccess: RedisAccess = { password: sentinelPassword, tls: tlsAccess };
  const dirs: string[] = [];
  const dataNodes: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all([...sentinels, ...dataNodes].map((n) => n.kill()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  const newDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'toolq-sentinel-'));
    dirs.push(dir);
    return dir;
  };
  try {
    const masterPort = await freePort();
    for (let i = 0; i < 3; i++) {
      const port = i === 0 ? masterPort : await freePort();
      const args = [
        ...(tls ? [...tlsServerArgs(tls, port), '--tls-replication', 'yes'] : ['--port', String(port)]),
        ...['--bind', '127.0.0.1', '--dir', newDir(), '--save', ''],
        ...['--appendonly', 'yes', '--repl-diskless-sync-delay', '0'],
        // masterauth on every node: after a failover any of them may be a replica.
        ...(password ? ['--requirepass', password, '--masterauth', password] : []),
      ];
      if (i > 0) args.push('--replicaof', '127.0.0.1', String(masterPort));
      dataNodes.push(redisProcess(port, args, nodeAccess));
    }
    await Promise.all(dataNodes.map((n) => n.start()));
    await waitFor(
      'both replicas to sync with the master',
      async () => {
        for (const replica of dataNodes.slice(1)) {
          const repl = infoFields(await adminCommand(replica.port, nodeAccess, ['info', 'replication']));
          if (repl.get('master_link_status') !== 'up') return false;
        }
        return true;
      },
      20_000,
    );
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = newDir();
      const file = join(dir, 'sentinel.conf');
      writeFileSync(
        file,
        [
          ...(tls
            ? [
                'port 0',
                `tls-port ${port}`,
                `tls-cert-file ${tls.certFile}`,
                `tls-key-file ${tls.keyFile}`,
                `tls-ca-cert-file ${tls.caFile}`,
                'tls-auth-clients no',
                // Also what makes a sentinel use TLS to the nodes and to the other sentinels.
                'tls-replication yes',
              ]
            : [`port ${port}`]),
          'bind 127.0.0.1',
          `dir ${dir}`,
          ...(sentinelPassword
            ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]
            : []),
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 2`,
          ...(password ? [`sentinel auth-pass ${SENTINEL_MASTER} ${password}`] : []),
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 3000`,
          '',
        ].join('\n'),
      );
      sentinels.push(redisProcess(port, [file, '--sentinel'], sentinelAccess));
    }
    await Promise.all(sentinels.map((s) => s.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  const command = (port: number, cmd: readonly (string | number)[]) =>
    adminCommand(port, sentinels.some((s) => s.port === port) ? sentinelAccess : nodeAccess, cmd);
  const all = [...dataNodes, ...sentinels];
  const setup: RedisSentinelSetup = {
    dataNodes,
    sentinels,
    config: {
      mode: 'sentinel',
      sentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
      masterName: SENTINEL_MASTER,
      ...(password ? { password } : {}),
      ...(sentinelPassword ? { sentinelCredentials: { password: sentinelPassword } } : {}),
      ...(tls ? { tls: { ca: tls.ca } } : {}),
    },
    env: {
      REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
      ...(password ? { REDIS_PASSWORD: password } : {}),
      ...(sentinelPassword ? { REDIS_SENTINEL_PASSWORD: sentinelPassword } : {}),
      ...(tls ? { REDIS_TLS_CA_FILE: tls.caFile } : {}),
    },
    masterPort: async () => {
      const live = sentinels.find((s) => s.isRunning);
      if (!live) throw new Error('no sentinel is running');
      const reply = (await command(live.port, [
        'sentinel',
        'get-master-addr-by-name',
        SENTINEL_MASTER,
      ])) as string[];
      return Number(reply[1]);
    },
    processOf: (port) => {
      const node = all.find((n) => n.port === port);
      if (!node) throw new Error(`no redis process on port ${port}`);
      return node;
    },
    command,
    waitHealthy: async (timeoutMs = 30_000) => {
      await waitFor(
        'the sentinels to agree on a master with synced replicas',
        async () => {
          const masters = new Set<number>();
          for (const sentinel of sentinels.filter((s) => s.isRunning)) {
            const reply = (await command(sentinel.port, [
              'sentinel',
              'get-master-addr-by-name',
              SENTINEL_MASTER,
            ])) as string[];
            masters.add(Number(reply[1]));
            const known = (await command(sentinel.port, [
              'sentinel',
              'sentinels',
              SENTINEL_MASTER,
            ])) as unknown[];
            // A failover needs a quorum: each sentinel must have found the other two.
            if (known.length < 2) return false;
          }
          const [master] = [...masters];
          if (masters.size !== 1 || master === undefined) return false;
          const role = infoFields(await command(master, ['info', 'replication']));
          if (role.get('role') !== 'master') return false;
          for (const node of dataNodes.filter((n) => n.isRunning && n.port !== master)) {
            const repl = infoFields(await command(node.port, ['info', 'replication']));
            if (repl.get('master_link_status') !== 'up' || repl.get('master_port') !== String(master))
              return false;
          }
          return true;
        },
        timeoutMs,
      );
    },
    stop,
  };
  try {
    await setup.waitHealthy(30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return setup;
}
