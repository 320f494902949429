/**
 * The coordinator's single reader of its reply stream. Workers append one entry per result; this
 * loop reads from the last position it processed (starting at the stream's beginning, so nothing
 * written before start-up is missed) and trims only what it has read. Unlike BullMQ's QueueEvents,
 * nothing here can be lost to a late subscription or to trimming by others.
 */
import type { CallResult, Logger } from '@toolq/shared';
import { parseCallResult, type Redis, withTimeout } from '@toolq/shared/internal';

const TRIM_EVERY_MS = 100;

export interface Reply {
  /** The dispatch's uid (field `b` of the stream entry). */
  uid: string;
  index: number;
  result: CallResult;
}

export interface ReplyReaderOptions {
  /** A connection of its own: XREAD BLOCK holds it. */
  blocking: Redis;
  /** For trimming, so the blocking connection only reads. */
  redis: Redis;
  streamKey: string;
  logger: Logger;
  onReplies: (replies: Reply[]) => void;
  /** Entries per read. Default 1000. */
  batchSize?: number;
  /** How long one XREAD blocks. Default 1000 ms. */
  blockMs?: number;
}

export class ReplyReader {
  private lastId = '0-0';
  private running = false;
  private loop: Promise<void> | undefined;
  private lastReadOkAt = 0;
  private startedAt = 0;
  private lastTrimAt = 0;
  private trimmedTo = '0-0';

  constructor(private readonly options: ReplyReaderOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startedAt = Date.now();
    this.loop = this.run();
  }

  /**
   * Healthy when a read completed recently (a blocked read returns at least every blockMs), or the
   * first read since start is still within its block.
   */
  isHealthy(now = Date.now()): boolean {
    const block = this.options.blockMs ?? 1_000;
    if (!this.running) return false;
    if (this.lastReadOkAt === 0) return now - this.startedAt < block + 1_000;
    return now - this.lastReadOkAt < 3 * block + 1_000;
  }

  async stop(): Promise<void> {
    this.running = false;
    // An XREAD BLOCK cannot be interrupted politely; dropping the connection ends it at once.
    this.options.blocking.disconnect();
    // A read queued while Redis was away may never settle after disconnect(): bound the wait.
    await withTimeout(this.loop ?? Promise.resolve(), 1_000, () => undefined, { unref: true });
  }

  private async run(): Promise<void> {
    const { blocking, streamKey, logger } = this.options;
    const count = this.options.batchSize ?? 1_000;
    const block = this.options.blockMs ?? 1_000;
    while (this.running) {
      try {
        const response = await blocking.xread(
          'COUNT',
          count,
          'BLOCK',
          block,
          'STREAMS',
          streamKey,
          this.lastId,
        );
        this.lastReadOkAt = Date.now();
        const entries = response?.[0]?.[1];
        if (!entries || entries.length === 0) {
          this.trim(); // what the last busy reads left, once traffic stops
          continue;
        }
        const replies: Reply[] = [];
        for (const [id, fields] of entries) {
          this.lastId = id;
          const reply = parseEntry(fields);
          if (reply) replies.push(reply);
          else logger.warn({ id }, 'ignored a malformed reply stream entry');
        }
        this.options.onReplies(replies);
        this.trim();
      } catch (err) {
        if (!this.running) break;
        logger.warn({ err: (err as Error).message }, 'reply stream read failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  private trim(): void {
    // At most every TRIM_EVERY_MS: trimming after every read costs a command per read under load.
    const now = Date.now();
    if (this.trimmedTo === this.lastId || now - this.lastTrimAt < TRIM_EVERY_MS) return;
    this.lastTrimAt = now;
    this.trimmedTo = this.lastId;
    // MINID keeps the entry at lastId itself; one entry left behind is harmless and keeps this cheap.
    this.options.redis.xtrim(this.options.streamKey, 'MINID', this.lastId).catch((err: Error) => {
      this.options.logger.debug({ err: err.message }, 'reply stream trim failed');
    });
  }
}

function parseEntry(fields: string[]): Reply | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string);
  const uid = map.get('b');
  const index = Number(map.get('i'));
  const raw = map.get('r');
  if (!uid || !Number.isInteger(index) || raw === undefined) return undefined;
  const result = parseCallResult(raw);
  return result ? { uid, index, result } : undefined;
}
