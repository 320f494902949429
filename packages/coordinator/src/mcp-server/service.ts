/**
 * The fleet as an MCP server, on every coordinator: sessions in Redis (any coordinator answers any
 * request), cancels that cross coordinators, and `notifications/tools/list_changed` on the open
 * GET streams of this coordinator when the fleet's tool list changes (each coordinator's catalog
 * reads the workers every second, so each notices a change by itself).
 */
import type { Logger, RedisConnectionConfig } from '@toolq/shared';
import { closeRedis, createRedis, DEFAULTS, type Redis } from '@toolq/shared/internal';
import type { Dispatcher } from '../dispatcher.ts';
import { McpCancels } from './cancels.ts';
import { MCP_DEFAULTS } from './options.ts';
import { McpSessions } from './sessions.ts';
import { listedTools, toolListVersion } from './tool-list.ts';

export interface McpServiceOptions {
  dispatcher: Dispatcher;
  /** The fleet's Redis (the Dispatcher's). */
  redis?: RedisConnectionConfig | string;
  prefix?: string;
  logger: Logger;
  /** The version the server names in `initialize` (the coordinator's). */
  version: string;
  /** Default MCP_DEFAULTS.sessionIdleMs. */
  sessionIdleMs?: number;
}

export class McpService {
  readonly dispatcher: Dispatcher;
  readonly sessions: McpSessions;
  readonly cancels: McpCancels;
  readonly logger: Logger;
  readonly version: string;
  private readonly redis: Redis;
  /** The open GET streams: each one's tools/list_changed sender, and how to end it. */
  private readonly streams = new Set<{ toolsChanged(): void; end(): void }>();
  private toolsVersion: string | undefined;
  private stopWatching: (() => void) | undefined;

  constructor(options: McpServiceOptions) {
    this.dispatcher = options.dispatcher;
    this.logger = options.logger.child({ component: 'mcp' });
    this.version = options.version;
    this.redis = createRedis(options.redis);
    this.redis.on('error', (err: Error) => this.logger.warn({ err: err.message }, 'redis error'));
    const prefix = options.prefix ?? DEFAULTS.prefix;
    this.sessions = new McpSessions({
      redis: this.redis,
      prefix,
      idleMs: options.sessionIdleMs ?? MCP_DEFAULTS.sessionIdleMs,
    });
    this.cancels = new McpCancels({ redis: this.redis, prefix, logger: this.logger });
  }

  /** Listens for cancels and watches the tool list; after the Dispatcher has started. */
  async start(): Promise<void> {
    await this.cancels.start();
    this.toolsVersion = this.currentToolsVersion();
    this.stopWatching = this.dispatcher.catalog.onRefresh(() => {
      const version = this.currentToolsVersion();
      if (version === this.toolsVersion) return;
      this.toolsVersion = version;
      for (const stream of this.streams) stream.toolsChanged();
    });
  }

  private currentToolsVersion(): string {
    return toolListVersion(listedTools(this.dispatcher.catalog.list()));
  }

  /** Keeps an open GET stream to tell of tool list changes; the returned function forgets it. */
  addStream(stream: { toolsChanged(): void; end(): void }): () => void {
    this.streams.add(stream);
    return () => this.streams.delete(stream);
  }

  /** Ends every open GET stream (at shutdown: they would hold the HTTP server open forever). */
  endStreams(): void {
    for (const stream of this.streams) stream.end();
    this.streams.clear();
  }

  async close(): Promise<void> {
    this.stopWatching?.();
    this.endStreams();
    await this.cancels.close();
    await closeRedis(this.redis);
  }
}
