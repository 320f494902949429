/**
 * MCP sessions in Redis, so that any coordinator answers any request of a session: a round-robin
 * balancer needs no stickiness. A session is only who it belongs to (the app of the token that
 * opened it); the protocol needs nothing else between requests, as each request is served by a
 * fresh stateless server. An idle session expires; its client then initializes again (404).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from '@toolq/shared/internal';
import { z } from 'zod';

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sessionSchema = z.object({ app: z.string(), createdAt: z.number() });
export type McpSession = z.infer<typeof sessionSchema>;

export class McpSessions {
  constructor(private readonly options: { redis: Redis; prefix: string; idleMs: number }) {}

  private key(id: string): string {
    return `${this.options.prefix}:mcp-session:${id}`;
  }

  /** A new session of `app`; its id is random (122 bits), as the spec asks. */
  async create(app: string): Promise<string> {
    const id = randomUUID();
    const session: McpSession = { app, createdAt: Date.now() };
    await this.options.redis.set(this.key(id), JSON.stringify(session), 'PX', this.options.idleMs);
    return id;
  }

  /** The session, its idle time restarted; undefined when unknown, expired or another app's. */
  async use(id: string, app: string): Promise<McpSession | undefined> {
    if (!SESSION_ID.test(id)) return undefined;
    const raw = await this.options.redis.getex(this.key(id), 'PX', this.options.idleMs);
    if (raw === null) return undefined;
    const parsed = sessionSchema.safeParse(JSON.parse(raw));
    // Another app's session is "not found": a token learns nothing of other apps' sessions.
    return parsed.success && parsed.data.app === app ? parsed.data : undefined;
  }

  async delete(id: string): Promise<void> {
    if (SESSION_ID.test(id)) await this.options.redis.del(this.key(id));
  }
}
