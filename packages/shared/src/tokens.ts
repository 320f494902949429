import { ToolqError } from './errors.ts';

/** Token lists of the environment (TOOLQ_API_TOKENS, TOOLQ_OPERATOR_TOKENS), `name:token,...`. */

const TOKEN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * `name:token,...`. Messages name the entry by position and app, never the token: configuration
 * errors end up in logs. The single TOOLQ_API_TOKEN is the app `default`, so no entry may take it.
 */
export function parseApiTokens(raw: string | undefined, single?: string): Map<string, string> {
  return parseNamedTokens(raw, {
    variable: 'TOOLQ_API_TOKENS',
    what: 'app',
    taken: single === undefined ? [] : [single],
    takenBy: 'another app',
    reserved: single === undefined ? undefined : { name: 'default', why: 'is the app of TOOLQ_API_TOKEN' },
  });
}

/** `name:token,...` of `variable`; no token may be one of `taken` or repeat. Never prints a token. */
export function parseNamedTokens(
  raw: string | undefined,
  options: {
    variable: string;
    /** What a name names, in messages: `app`, `operator`. */
    what: string;
    taken: readonly string[];
    /** Who holds the `taken` tokens, in messages. */
    takenBy: string;
    reserved?: { name: string; why: string } | undefined;
  },
): Map<string, string> {
  const tokens = new Map<string, string>();
  if (raw === undefined) return tokens;
  const { what } = options;
  const fail = (why: string) => {
    throw new ToolqError('CONFIG_INVALID', `invalid environment: ${options.variable}: ${why}`);
  };
  const taken = new Set(options.taken);
  const seen = new Set<string>();
  raw.split(',').forEach((entry, i) => {
    const at = entry.indexOf(':');
    const name = entry.slice(0, Math.max(0, at)).trim();
    const token = entry.slice(at + 1).trim();
    if (at < 0) fail(`entry ${i + 1} is not name:token`);
    if (!TOKEN_NAME.test(name)) fail(`entry ${i + 1}: the ${what} name must be 1-64 letters, digits, _ . -`);
    if (name === options.reserved?.name)
      fail(`entry ${i + 1}: "${name}" ${options.reserved.why}; use another name`);
    if (tokens.has(name)) fail(`entry ${i + 1}: ${what} ${name} is named twice`);
    if (token.length < 16) fail(`entry ${i + 1} (${what} ${name}): the token must be at least 16 characters`);
    if (seen.has(token)) fail(`entry ${i + 1} (${what} ${name}): the token is used by another ${what}`);
    if (taken.has(token)) fail(`entry ${i + 1} (${what} ${name}): the token is used by ${options.takenBy}`);
    seen.add(token);
    tokens.set(name, token);
  });
  return tokens;
}
