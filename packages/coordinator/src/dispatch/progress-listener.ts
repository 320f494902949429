/**
 * The progress of this coordinator's calls, as their workers report it (`ctx.reportProgress`):
 * one subscription to the coordinator's progress channel, opened the first time a dispatch asks
 * for progress, and the reports handed to that dispatch's `onProgress` by batch uid.
 */
import type { Logger } from '@toolq/shared';
import {
  closeRedis,
  duplicateConnection,
  parseProgressMessage,
  progressChannel,
  type Redis,
} from '@toolq/shared/internal';

/** How long an answer waits at most for the progress reported before it. */
const FLUSH_WAIT_MS = 250;

/** One progress report of one call of a batch (`DispatchOptions.onProgress`). */
export interface ProgressUpdate {
  /** The call's place in the batch, and its tool_use id. */
  index: number;
  toolUseId: string;
  progress: number;
  total?: number;
  message?: string;
}

export class ProgressListener {
  private subscriber: Redis | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly watchers = new Map<
    string,
    { ids: readonly string[]; onProgress: (u: ProgressUpdate) => void }
  >();

  private readonly channel: string;

  /** `channel`: the coordinator's reply stream, whose progress channel this listens to. */
  constructor(private readonly options: { redis: Redis; channel: string; logger: Logger }) {
    this.channel = progressChannel(options.channel);
  }

  /** Hands the batch's reports to `onProgress`, from once subscribed until `until` settles. */
  async watch(
    uid: string,
    calls: readonly { id: string }[],
    onProgress: (u: ProgressUpdate) => void,
    until: Promise<unknown>,
  ): Promise<void> {
    this.watchers.set(uid, { ids: calls.map((call) => call.id), onProgress });
    const stop = () => void this.watchers.delete(uid);
    until.then(() => this.flush(), stop).finally(stop);
    await this.subscribe();
  }

  /**
   * `answer`, once every report published before its results has been handed over: a worker
   * publishes a call's progress before it writes the result, and Redis answers a PING on the
   * subscription after the messages it sent before, so the last report is not lost to the result.
   */
  async flushed<T>(answer: Promise<T>): Promise<T> {
    const value = await answer;
    await this.flush();
    return value;
  }

  private async flush(): Promise<void> {
    const subscriber = this.subscriber;
    if (!subscriber) return;
    let timer: NodeJS.Timeout | undefined;
    // Bounded: a Redis that does not answer must not hold the answer up.
    await Promise.race([
      subscriber.ping().catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, FLUSH_WAIT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private subscribe(): Promise<void> {
    if (!this.subscribed) {
      const subscriber = duplicateConnection(this.options.redis);
      subscriber.on('error', (err: Error) =>
        this.options.logger.warn({ err: err.message }, 'progress subscriber: redis error'),
      );
      subscriber.on('message', (channel: string, raw: string) => {
        if (channel !== this.channel) return;
        const message = parseProgressMessage(raw);
        const watcher = message && this.watchers.get(message.batchId);
        if (!message || !watcher) return;
        const { batchId: _uid, index, ...progress } = message;
        try {
          watcher.onProgress({ index, toolUseId: watcher.ids[index] ?? '', ...progress });
        } catch (err) {
          this.options.logger.warn({ err: (err as Error).message }, 'an onProgress callback threw');
        }
      });
      this.subscriber = subscriber;
      // ioredis subscribes again by itself after a reconnect.
      this.subscribed = subscriber.subscribe(this.channel).then(() => undefined);
      this.subscribed.catch(() => {
        this.subscribed = undefined;
      });
    }
    return this.subscribed;
  }

  async close(): Promise<void> {
    this.watchers.clear();
    if (this.subscriber) await closeRedis(this.subscriber);
  }
}
