import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured JSON logs. Secrets never reach a log line: the redaction paths cover the places
 * where a token or key could appear.
 */
export function createLogger(options: { name: string; level?: LoggerOptions['level'] }): Logger {
  return pino({
    name: options.name,
    level: options.level ?? 'info',
    redact: {
      paths: [
        '*.apiToken',
        '*.anthropicApiKey',
        '*.authorization',
        'req.headers.authorization',
        'headers.authorization',
      ],
      censor: '[redacted]',
    },
  });
}
