/**
 * A tool that answers who its call acts for: `ctx.app`, and a digest of `ctx.context` (not the
 * context itself, so that a test can look for it in Redis and the logs).
 */
import { createHash } from 'node:crypto';
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

export default [
  defineTool({
    name: 'whoami',
    description: 'Answers the app and a digest of the caller context of its call.',
    input: z.object({}),
    run: (_input, ctx) => ({
      app: ctx.app,
      keys: Object.keys(ctx.context),
      sha256: createHash('sha256').update(JSON.stringify(ctx.context)).digest('hex'),
    }),
  }),
];
