/**
 * Operators' side of flow control (docs/flow-control.md): a tool's limits in force, an override
 * written at run time, and a pause. The override lives in Redis (it survives restarts and every
 * coordinator and worker reads it within a second); the cap and the pause are also written at once
 * into the tool queue's BullMQ meta, where the Lua that starts jobs reads them.
 */
import { type RateLimit, ToolqError } from '@toolq/shared';
import {
  flowRoute,
  type LimitsOverride,
  type Redis,
  readOverride,
  type ToolSpec,
  writeOverride,
} from '@toolq/shared/internal';
import type { Queue } from 'bullmq';
import type { Catalog } from '../catalog.ts';
import { limitsView, type ToolLimitsView } from './flow-view.ts';

export class FlowControl {
  constructor(private readonly deps: { redis: Redis; catalog: Catalog; queueFor(route: string): Queue }) {}

  /** The definition's limits as the catalog knows them; NOT_FOUND for a tool nobody knows. */
  private async specOf(tool: string): Promise<Pick<ToolSpec, 'name' | 'concurrency' | 'rateLimit'>> {
    const { catalog } = this.deps;
    const find = () => catalog.list().find((t) => t.name === tool);
    let spec = find();
    if (!spec) {
      await catalog.refresh();
      spec = find();
    }
    if (spec) return spec;
    if (catalog.flow.namedTools().includes(tool)) return { name: tool };
    throw new ToolqError(
      'NOT_FOUND',
      `tool: no tool ${JSON.stringify(tool)} is known (no worker advertises it and it has no limits set); check the name in GET /v1/tools`,
    );
  }

  async get(tool: string): Promise<ToolLimitsView> {
    const spec = await this.specOf(tool);
    await this.deps.catalog.flow.refresh(this.deps.redis);
    return limitsView(tool, this.deps.catalog.flow.limitsOf(spec));
  }

  /** Fields given replace the definition's (null removes the limit); fields absent stay as they were. */
  async put(
    tool: string,
    change: { concurrency?: number | null; rateLimit?: RateLimit | null },
  ): Promise<ToolLimitsView> {
    const spec = await this.specOf(tool);
    await this.update(tool, (current) => ({
      ...current,
      ...(change.concurrency !== undefined ? { concurrency: change.concurrency } : {}),
      ...(change.rateLimit !== undefined ? { rateLimit: change.rateLimit } : {}),
    }));
    await this.deps.catalog.flow.refresh(this.deps.redis);
    const limits = this.deps.catalog.flow.limitsOf(spec);
    const queue = this.deps.queueFor(flowRoute(tool));
    if (limits.concurrency === null) await queue.removeGlobalConcurrency();
    else await queue.setGlobalConcurrency(limits.concurrency);
    return limitsView(tool, limits);
  }

  /** Pauses (or resumes) the tool's queue, fleet-wide and persistently; running calls finish. */
  async setPaused(tool: string, paused: boolean): Promise<ToolLimitsView> {
    const spec = await this.specOf(tool);
    await this.update(tool, (current) => ({ ...current, paused }));
    const queue = this.deps.queueFor(flowRoute(tool));
    if (paused) await queue.pause();
    else await queue.resume();
    await this.deps.catalog.flow.refresh(this.deps.redis);
    return limitsView(tool, this.deps.catalog.flow.limitsOf(spec));
  }

  /**
   * Read, change, write: two operators changing one tool at the same moment may lose one of the
   * two changes (the last write wins, and the answer of each says what it wrote).
   */
  private async update(
    tool: string,
    change: (current: LimitsOverride) => LimitsOverride,
  ): Promise<LimitsOverride> {
    const keys = this.deps.catalog.flow.keys;
    const next = change((await readOverride(this.deps.redis, keys, tool)) ?? {});
    await writeOverride(this.deps.redis, keys, tool, next);
    return next;
  }
}
