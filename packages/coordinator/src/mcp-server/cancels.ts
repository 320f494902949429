/**
 * `notifications/cancelled` across coordinators: a client's cancel may reach another coordinator
 * than the one running the call (round-robin). The receiving one aborts the call itself when it
 * holds it, else publishes the cancel; every coordinator listens and aborts what it holds. The
 * dispatch's abort then answers the call and tells its worker to stop (the cancel channel). A
 * cancel that overtakes its call (sent to another coordinator before the call's own has started it)
 * is also kept in Redis for a while, and the call checks for it as it starts.
 */
import type { Logger } from '@toolq/shared';
import { closeRedis, duplicateConnection, type Redis } from '@toolq/shared/internal';
import { z } from 'zod';
import { MCP_DEFAULTS } from './options.ts';

const cancelSchema = z.object({
  session: z.string(),
  requestId: z.union([z.string(), z.number()]),
  reason: z.string().max(1_000),
});
type McpCancel = z.infer<typeof cancelSchema>;

export class McpCancels {
  private readonly running = new Map<string, AbortController>();
  private subscriber: Redis | undefined;
  private readonly channel: string;

  constructor(private readonly options: { redis: Redis; prefix: string; logger: Logger }) {
    this.channel = `${options.prefix}:mcp-cancel`;
  }

  async start(): Promise<void> {
    const subscriber = duplicateConnection(this.options.redis);
    subscriber.on('error', (err: Error) =>
      this.options.logger.warn({ err: err.message }, 'MCP cancel subscriber: redis error'),
    );
    subscriber.on('message', (channel: string, raw: string) => {
      if (channel !== this.channel) return;
      let message: McpCancel;
      try {
        message = cancelSchema.parse(JSON.parse(raw));
      } catch {
        this.options.logger.warn({ channel }, 'ignored a malformed MCP cancel message');
        return;
      }
      this.abortLocal(message);
    });
    this.subscriber = subscriber;
    await subscriber.subscribe(this.channel);
  }

  /** Registers a running call; the returned function forgets it. */
  track(session: string, requestId: string | number, controller: AbortController): () => void {
    const key = keyOf(session, requestId);
    this.running.set(key, controller);
    return () => {
      if (this.running.get(key) === controller) this.running.delete(key);
    };
  }

  /** Cancels a call of the session wherever it runs. */
  async cancel(message: McpCancel): Promise<void> {
    if (this.abortLocal(message)) return;
    const key = this.markKey(message.session, message.requestId);
    await Promise.all([
      this.options.redis.set(key, message.reason, 'PX', MCP_DEFAULTS.cancelMemoryMs),
      this.options.redis.publish(this.channel, JSON.stringify(message)),
    ]);
  }

  /** A cancel of this call that arrived before the call did (request ids are never reused in a session). */
  async cancelledEarly(session: string, requestId: string | number): Promise<string | undefined> {
    return (await this.options.redis.get(this.markKey(session, requestId))) ?? undefined;
  }

  private markKey(session: string, requestId: string | number): string {
    return `${this.options.prefix}:mcp-cancelled:${keyOf(session, requestId)}`;
  }

  private abortLocal(message: McpCancel): boolean {
    const controller = this.running.get(keyOf(message.session, message.requestId));
    if (!controller) return false;
    controller.abort(new Error(message.reason));
    return true;
  }

  async close(): Promise<void> {
    for (const controller of this.running.values())
      controller.abort(new Error('the coordinator is shutting down'));
    this.running.clear();
    if (this.subscriber) await closeRedis(this.subscriber);
  }
}

// JSON keeps the request id's type: id 1 and id "1" are different requests.
const keyOf = (session: string, requestId: string | number) => `${session} ${JSON.stringify(requestId)}`;
