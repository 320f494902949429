/**
 * The scan that refuses absurd JSON bodies before anything is parsed (src/http/json-shape.ts),
 * without a server: nesting exactly at and one past `maxDepth`, a top-level key's array exactly at
 * and one past `maxItems`, brackets, commas and escaped quotes inside strings (which must count for
 * nothing), UTF-8, numbers, bodies that arrive in pieces, and a huge array refused from its first
 * bytes. Size is not this scan's business: Fastify's bodyLimit refuses a large body before it.
 */
import { ToolqError } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { type JsonGuardLimits, JsonShapeScanner } from '../../src/http/json-shape.ts';

const LIMITS: JsonGuardLimits = { maxDepth: 5, maxItems: 3 };

/** Scans `body` in pieces of `pieceBytes` (all at once by default), as one scanner sees a stream. */
function scan(body: string | Uint8Array, limits = LIMITS, pieceBytes = Number.POSITIVE_INFINITY): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const scanner = new JsonShapeScanner(limits);
  for (let at = 0; at < bytes.length; at += pieceBytes) {
    scanner.scan(bytes.subarray(at, Math.min(bytes.length, at + pieceBytes)));
  }
}

/** The ToolqError `scan` throws, or undefined when the body passes. */
function refusal(body: string | Uint8Array, limits = LIMITS, pieceBytes?: number): ToolqError | undefined {
  try {
    scan(body, limits, pieceBytes);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ToolqError);
    return err as ToolqError;
  }
}

/** `depth` nested arrays around `inner`: `[[[0]]]` for depth 3. */
function nestedArrays(depth: number, inner = '0'): string {
  return `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
}

/** A top-level object whose `key` holds `n` elements rendered by `element(i)`. */
function withArray(n: number, element: (i: number) => string = (i) => String(i), key = 'tool_uses'): string {
  return JSON.stringify({ run: 'r' }).replace(
    /}$/,
    `,"${key}":[${Array.from({ length: n }, (_, i) => element(i)).join(',')}]}`,
  );
}

describe('nesting depth', () => {
  it('lets exactly maxDepth levels through and refuses one more, arrays and objects alike', () => {
    expect(refusal(nestedArrays(5))).toBeUndefined();
    const deeper = refusal(nestedArrays(6));
    expect(deeper?.code).toBe('INVALID_REQUEST');
    expect(deeper?.message).toBe('the body nests deeper than 5 levels; flatten the tool input');

    const objects = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;
    expect(JSON.parse(objects(5))).toBeTruthy(); // the fixture is JSON
    expect(refusal(objects(5))).toBeUndefined();
    expect(refusal(objects(6))?.code).toBe('INVALID_REQUEST');
    // Mixed, and with whitespace between every bracket.
    expect(refusal('{ "a" : [ { "b" : [ [ ] ] } ] }')).toBeUndefined();
    expect(refusal('{ "a" : [ { "b" : [ [ [ ] ] ] } ] }')?.code).toBe('INVALID_REQUEST');
  });

  it('counts the depth of the deepest point, not the number of containers', () => {
    // Many siblings at depth maxDepth: closing brackets bring the depth back down.
    const siblings = `[[[[${Array.from({ length: 50 }, () => '[0]').join(',')}]]]]`;
    expect(refusal(siblings)).toBeUndefined();
  });

  it('throws at the opening bracket past the limit, before the rest of the body is seen', () => {
    const scanner = new JsonShapeScanner(LIMITS);
    scanner.scan(Buffer.from('[[[[['));
    expect(() => scanner.scan(Buffer.from('['))).toThrow(/nests deeper than 5/);
  });

  it('refuses the deep nesting that would overflow a recursive walk, at the real server limit', () => {
    // 100,000 levels: what JSON.stringify and validators, which recurse, would overflow on.
    const limits = { maxDepth: 200, maxItems: 1_000 };
    expect(refusal(nestedArrays(200), limits)).toBeUndefined();
    expect(refusal(nestedArrays(201), limits)?.message).toMatch(/deeper than 200/);
    expect(refusal(nestedArrays(100_000), limits)?.code).toBe('INVALID_REQUEST');
  });

  it('ignores brackets inside strings, including after escaped quotes and backslashes', () => {
    const bracketsInString = JSON.stringify({ a: [[['[[[[[[{{{{{{']]] });
    expect(refusal(bracketsInString)).toBeUndefined();
    // `\"` does not end the string, so the brackets after it are still text.
    const escapedQuote = JSON.stringify({ a: [['say \\"[[[[[[\\" and "[[[[[[[']] });
    expect(escapedQuote).toContain('\\"');
    expect(refusal(escapedQuote)).toBeUndefined();
    // `\\` is one escaped backslash: the quote after it ends the string, and the brackets count.
    const endsAfterBackslash = '{"a":[["x\\\\",[[[[0]]]]]]}';
    expect(JSON.parse(endsAfterBackslash)).toEqual({ a: [['x\\', [[[[0]]]]]] });
    expect(refusal(endsAfterBackslash)?.code).toBe('INVALID_REQUEST');
    // The same string written with a \u escape for the quote stays text.
    expect(refusal('{"a":["\\u0022[[[[[[["]}')).toBeUndefined();
  });

  it('counts brackets the same however the body is cut into pieces', () => {
    const deep = '{"a":"\\"[[[[[[\\\\","b":[[[[[0]]]]]}';
    expect(JSON.parse(deep)).toBeTruthy();
    const fine = '{"a":"\\"[[[[[[\\\\","b":[[[[0]]]]}';
    for (const pieceBytes of [1, 2, 3, 5, 7]) {
      expect(refusal(deep, LIMITS, pieceBytes)?.code, `pieces of ${pieceBytes}`).toBe('INVALID_REQUEST');
      expect(refusal(fine, LIMITS, pieceBytes), `pieces of ${pieceBytes}`).toBeUndefined();
    }
  });
});

describe('elements of a top-level array', () => {
  it('lets exactly maxItems elements through and refuses one more, naming the key', () => {
    expect(refusal(withArray(3))).toBeUndefined();
    const over = refusal(withArray(4));
    expect(over?.code).toBe('INVALID_REQUEST');
    expect(over?.message).toBe(
      'tool_uses: at most 3 items are allowed; split the work into several requests',
    );
  });

  it('counts elements of every kind: numbers, strings, objects, arrays, literals', () => {
    const kinds = ['-1.5e+10', '"a,b,c"', '{"x":[1,2,3,4,5]}', '[1,2,3,4,5]', 'null', 'true'];
    for (const kind of kinds) {
      expect(refusal(withArray(3, () => kind)), kind).toBeUndefined();
      expect(refusal(withArray(4, () => kind))?.message, kind).toMatch(/^tool_uses: at most 3/);
    }
  });

  it('does not count commas inside strings or nested containers', () => {
    // Three elements, each full of commas.
    const body = withArray(3, (i) =>
      JSON.stringify({ id: `t${i}`, input: { list: [1, 2, 3, 4, 5], text: 'a,b,"c",d' } }),
    );
    expect(refusal(body)).toBeUndefined();
    expect(refusal(JSON.stringify({ tool_uses: ['\\",\\",\\",', ',,,,'] }))).toBeUndefined();
    // Arrays deeper than the top-level object's values are not limited by count.
    expect(refusal(JSON.stringify({ a: { b: [1, 2, 3, 4, 5, 6, 7, 8] } }))).toBeUndefined();
    expect(refusal(JSON.stringify({ a: [[1, 2, 3, 4, 5, 6, 7, 8]] }))).toBeUndefined();
  });

  it('counts an empty array as none, whitespace included', () => {
    expect(refusal('{"tool_uses":[]}', { maxDepth: 5, maxItems: 0 })).toBeUndefined();
    expect(refusal('{"tool_uses":[ \n\t\r ]}', { maxDepth: 5, maxItems: 0 })).toBeUndefined();
    expect(refusal('{"tool_uses": [ 1 , 2 , 3 ] }')).toBeUndefined();
    expect(refusal('{"tool_uses": [ 1 , 2 , 3 , 4 ] }')?.code).toBe('INVALID_REQUEST');
  });

  it('counts each top-level array on its own and names the one over the limit', () => {
    const body = JSON.stringify({
      a: [1, 2, 3],
      b: { c: 1 },
      d: 'x',
      tool_uses: [1, 2, 3],
      calls: [1, 2, 3, 4],
    });
    expect(refusal(body)?.message).toMatch(/^calls: at most 3 items/);
    // The key is the top-level one, not a key inside a nested object before it.
    const nestedKeys = JSON.stringify({ meta: { inner: 'x', other: [1] }, tool_uses: [1, 2, 3, 4] });
    expect(refusal(nestedKeys)?.message).toMatch(/^tool_uses: /);
    // A string value is not taken for a key.
    expect(refusal('{"k":"not_a_key","tool_uses":[1,2,3,4]}')?.message).toMatch(/^tool_uses: /);
  });

  it('names a key written in UTF-8 or with escapes, and any key only by its first 64 bytes', () => {
    expect(refusal(withArray(4, String, 'outils_é_🔧'))?.message).toMatch(/^outils_é_🔧: at most 3/);
    const long = 'k'.repeat(100);
    expect(refusal(withArray(4, String, long))?.message).toBe(
      `${'k'.repeat(64)}: at most 3 items are allowed; split the work into several requests`,
    );
  });

  it('still names the key when the body arrives a byte at a time (the key split across pieces)', () => {
    expect(refusal(withArray(4, String, 'outils_é'), LIMITS, 1)?.message).toMatch(/^outils_é: at most 3/);
  });

  it('falls back to "an array" for an array inside a top-level array', () => {
    expect(refusal('[[1,2,3]]')).toBeUndefined();
    expect(refusal('[[1,2,3,4]]')?.message).toMatch(/^an array: at most 3 items/);
    // Only strings at depth 1 are keys: a string element of the array is not its name.
    expect(refusal('[0,["k",2,3,4]]')?.message).toMatch(/^an array: at most 3 items/);
  });

  it('refuses a huge array from its first elements, without needing the rest', () => {
    // The server's own limit and an array far past it: the scan stops at element 1,001.
    const limits = { maxDepth: 200, maxItems: 1_000 };
    const element = '{"id":"toolu_01","name":"echo","input":{}}';
    const scanner = new JsonShapeScanner(limits);
    const head = `{"tool_uses":[${Array.from({ length: 1_000 }, () => element).join(',')}`;
    scanner.scan(Buffer.from(head)); // exactly 1,000 so far: fine
    expect(() => scanner.scan(Buffer.from(`,${element}`))).toThrow(/^tool_uses: at most 1000 items/);
    // A whole 265,000-element body is refused as fast as its first 1,001 elements.
    const huge = Buffer.from(`{"tool_uses":[${Array.from({ length: 265_000 }, () => '0').join(',')}]}`);
    expect(refusal(huge, limits)?.message).toMatch(/^tool_uses: at most 1000 items/);
  });
});

describe('bytes that must count for nothing', () => {
  it('passes real request bodies: UTF-8 text, emoji, brackets and quotes in text, numbers in every form', () => {
    const body = JSON.stringify({
      tool_uses: [
        { id: 'toolu_01', name: 'translate', input: { text: 'naïve café 日本語 🔧 [x] {y}', n: -0.5e-7 } },
        {
          id: 'toolu_02',
          name: 'echo',
          input: {
            s: '\u005b\u007b\u0022',
            big: Number.MAX_SAFE_INTEGER,
            huge: 1.7976931348623157e308,
            tiny: 5e-324,
            zero: 0,
          },
        },
        { id: 'toolu_03', name: 'echo', input: { quote: '"', backslash: '\\', both: '\\"', tab: '\t\n' } },
      ],
    });
    expect(refusal(body)).toBeUndefined();
    expect(refusal(body, LIMITS, 1)).toBeUndefined();
  });

  it('never mistakes a byte of a multi-byte UTF-8 character for a bracket or a quote', () => {
    // Every continuation byte is 0x80..0xBF and every lead byte 0xC2..0xF4: none is ASCII.
    const chars = ['é', 'Ǜ', '€', '〚', '🔧', '\u{10FFFF}'];
    for (const ch of chars) {
      expect(
        [...Buffer.from(ch)].every((b) => b >= 0x80),
        ch,
      ).toBe(true);
      const body = `{"tool_uses":[${Array.from({ length: 3 }, () => `"${ch.repeat(20)}"`).join(',')}]}`;
      expect(refusal(body, LIMITS, 1), ch).toBeUndefined();
    }
  });
});
