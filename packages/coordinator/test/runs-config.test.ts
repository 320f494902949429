/**
 * The run API's configuration: per-app tokens (TOOLQ_API_TOKENS), whose mistakes are reported
 * without ever printing a token, the run retention and takeover bounds, and the run limits.
 */
import { loadConfig, ToolqError } from '@toolq/shared';
import { parseApiTokens } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { BearerTokens } from '../src/http/auth.ts';

const SECRET = 'very-secret-token-0123456789';

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ToolqError);
    return (err as ToolqError).message;
  }
  throw new Error('expected a ToolqError');
}

describe('TOOLQ_API_TOKENS', () => {
  it('parses name:token pairs', () => {
    const tokens = parseApiTokens(` alpha:${SECRET} , beta:another-token-0123456789`);
    expect([...tokens]).toEqual([
      ['alpha', SECRET],
      ['beta', 'another-token-0123456789'],
    ]);
  });

  it('says what is wrong and where, never the token', () => {
    const cases: [string, string | undefined, RegExp][] = [
      [`alpha${SECRET}`, undefined, /entry 1 is not name:token/],
      [`al pha:${SECRET}`, undefined, /entry 1: the app name must be/],
      [`alpha:${SECRET},alpha:${SECRET}x`, undefined, /entry 2: app alpha is named twice/],
      [`alpha:short`, undefined, /entry 1 \(app alpha\): the token must be at least 16 characters/],
      [`alpha:${SECRET},beta:${SECRET}`, undefined, /entry 2 \(app beta\): the token is used by another app/],
      [`beta:${SECRET}`, SECRET, /entry 1 \(app beta\): the token is used by another app/],
      [`default:${SECRET}x`, SECRET, /"default" is the app of TOOLQ_API_TOKEN/],
    ];
    for (const [raw, single, expected] of cases) {
      const message = messageOf(() => parseApiTokens(raw, single));
      expect(message).toMatch(expected);
      expect(message).toMatch(/^invalid environment: TOOLQ_API_TOKENS: /);
      expect(message).not.toContain(SECRET);
      expect(message).not.toContain('short');
    }
  });

  it('loadConfig reads the tokens and the run bounds, with defaults', () => {
    const config = loadConfig({ TOOLQ_API_TOKEN: SECRET, TOOLQ_API_TOKENS: 'alpha:alpha-token-0123456789' });
    expect(config.apiTokens.get('alpha')).toBe('alpha-token-0123456789');
    expect(config.runRetentionMs).toBe(24 * 3600_000);
    expect(config.runTakeoverMs).toBe(15_000);
    const custom = loadConfig({ TOOLQ_RUN_RETENTION_MS: '60000', TOOLQ_RUN_TAKEOVER_MS: '5000' });
    expect([custom.runRetentionMs, custom.runTakeoverMs]).toEqual([60_000, 5_000]);
    expect(messageOf(() => loadConfig({ TOOLQ_RUN_TAKEOVER_MS: '100' }))).toMatch(/TOOLQ_RUN_TAKEOVER_MS/);
    expect(messageOf(() => loadConfig({ TOOLQ_RUN_RETENTION_MS: 'soon' }))).toMatch(/TOOLQ_RUN_RETENTION_MS/);
  });

  it('loadConfig reads the run limits: slots, input size, quota per app, model timeout', () => {
    const defaults = loadConfig({});
    expect([
      defaults.runConcurrency,
      defaults.maxRunInputBytes,
      defaults.maxActiveRunsPerApp,
      defaults.modelTimeoutMs,
    ]).toEqual([100, 1_048_576, 100, 120_000]);
    const custom = loadConfig({
      TOOLQ_RUN_CONCURRENCY: '8',
      TOOLQ_MAX_RUN_INPUT_BYTES: '50000',
      TOOLQ_MAX_ACTIVE_RUNS_PER_APP: '3',
      TOOLQ_MODEL_TIMEOUT_MS: '30000',
    });
    expect([
      custom.runConcurrency,
      custom.maxRunInputBytes,
      custom.maxActiveRunsPerApp,
      custom.modelTimeoutMs,
    ]).toEqual([8, 50_000, 3, 30_000]);
    for (const [name, value] of [
      ['TOOLQ_RUN_CONCURRENCY', '0'],
      ['TOOLQ_MAX_RUN_INPUT_BYTES', '10'],
      ['TOOLQ_MAX_ACTIVE_RUNS_PER_APP', 'many'],
      ['TOOLQ_MODEL_TIMEOUT_MS', '5'],
    ] as const) {
      expect(messageOf(() => loadConfig({ [name]: value }))).toMatch(new RegExp(name));
    }
  });

  it('loadConfig reads the per-app cap on event streams, default 100', () => {
    expect(loadConfig({}).maxStreamsPerApp).toBe(100);
    expect(loadConfig({ TOOLQ_MAX_STREAMS_PER_APP: '7' }).maxStreamsPerApp).toBe(7);
    expect(messageOf(() => loadConfig({ TOOLQ_MAX_STREAMS_PER_APP: '0' }))).toMatch(
      /TOOLQ_MAX_STREAMS_PER_APP/,
    );
  });
});

describe('BearerTokens', () => {
  const tokens = new BearerTokens({
    apiToken: SECRET,
    apiTokens: new Map([
      ['alpha', 'alpha-token-0123456789'],
      ['beta', 'beta-token-0123456789ab'],
    ]),
    operatorTokens: new Map([['ops', 'ops-token-0123456789abcd']]),
  });

  it('names the app of the presented token, and none for anything else', () => {
    expect(tokens.appFor(`Bearer ${SECRET}`)).toBe('default');
    expect(tokens.appFor('Bearer alpha-token-0123456789')).toBe('alpha');
    expect(tokens.appFor('bearer beta-token-0123456789ab')).toBe('beta');
    for (const header of [
      undefined,
      '',
      'Bearer ',
      'Bearer alpha-token-012345678',
      'Basic alpha-token-0123456789',
    ]) {
      expect(tokens.appFor(header)).toBeUndefined();
    }
  });

  it('requires nothing when no token is set', () => {
    expect(new BearerTokens({}).required).toBe(false);
    expect(tokens.required).toBe(true);
    expect(new BearerTokens({ operatorTokens: new Map([['ops', SECRET]]) }).required).toBe(true);
  });

  it("tells an operator's token from an app's, and gives an operator no app", () => {
    expect(tokens.holderOf('Bearer ops-token-0123456789abcd')).toEqual({ role: 'operator', name: 'ops' });
    expect(tokens.holderOf('Bearer alpha-token-0123456789')).toEqual({ role: 'app', name: 'alpha' });
    expect(tokens.appFor('Bearer ops-token-0123456789abcd')).toBeUndefined();
  });
});

describe('TOOLQ_OPERATOR_TOKENS and TOOLQ_ALLOWED_HOSTS', () => {
  it('parse name:token pairs and host names', () => {
    const config = loadConfig({
      TOOLQ_OPERATOR_TOKENS: `ops:${SECRET}, prometheus:prometheus-token-0123456789`,
      TOOLQ_ALLOWED_HOSTS: 'toolq.internal, 10.0.0.5 ,[fd00::1]',
    });
    expect([...config.operatorTokens]).toEqual([
      ['ops', SECRET],
      ['prometheus', 'prometheus-token-0123456789'],
    ]);
    expect(config.allowedHosts).toEqual(['toolq.internal', '10.0.0.5', '[fd00::1]']);
    expect(loadConfig({}).operatorTokens.size).toBe(0);
    expect(loadConfig({}).allowedHosts).toEqual([]);
  });

  it('say what is wrong and where, never the token; no token is both an app and an operator', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ TOOLQ_OPERATOR_TOKENS: `ops${SECRET}` }, /TOOLQ_OPERATOR_TOKENS: entry 1 is not name:token/],
      [{ TOOLQ_OPERATOR_TOKENS: 'ops:short' }, /entry 1 \(operator ops\): the token must be at least 16/],
      [
        { TOOLQ_OPERATOR_TOKENS: `a:${SECRET},b:${SECRET}` },
        /entry 2 \(operator b\): the token is used by another operator/,
      ],
      [{ TOOLQ_OPERATOR_TOKENS: `ops:${SECRET}`, TOOLQ_API_TOKEN: SECRET }, /the token is used by an app/],
      [
        { TOOLQ_OPERATOR_TOKENS: `ops:${SECRET}`, TOOLQ_API_TOKENS: `alpha:${SECRET}` },
        /TOOLQ_OPERATOR_TOKENS: entry 1 \(operator ops\): the token is used by an app/,
      ],
      [{ TOOLQ_ALLOWED_HOSTS: 'ok.example,evil.example:8080' }, /TOOLQ_ALLOWED_HOSTS.*entry 2/],
    ];
    for (const [env, expected] of cases) {
      const message = messageOf(() => loadConfig(env));
      expect(message).toMatch(expected);
      expect(message).not.toContain(SECRET);
      expect(message).not.toContain('short');
    }
  });
});
