import { createLogger } from '@toolq/shared';

/** Logs only when TOOLQ_TEST_LOG_LEVEL asks for them. */
export const testLogger = () =>
  createLogger({
    name: 'test',
    level: (process.env.TOOLQ_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'silent',
  });
