/**
 * Refuses JSON bodies of a shape no request may have before anything is parsed: nesting deeper than `maxDepth` (JSON.stringify and validators recurse and overflow the
 * stack) or a top-level array (such as `tool_uses`) with more than `maxItems` elements. A body of
 * 265,000 tiny tool uses is refused after its first few kilobytes instead of costing a second of
 * parsing and validation on the event loop, where every other batch's deadline waits.
 */
import { ToolqError } from '@toolq/shared';

export interface JsonGuardLimits {
  maxDepth: number;
  /** Elements of an array that is a value of the top-level object. */
  maxItems: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;
const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Scans bytes (UTF-8 never puts these ASCII bytes inside a multi-byte character). */
export class JsonShapeScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Whether the container at depth 2 is an array, and whether it has an element yet. */
  private level2IsArray = false;
  private level2Items = 0;
  private level2Empty = true;
  /** The key (first string at depth 1 after `{` or `,`) that owns the current depth-2 value. */
  private currentKey = '';
  private readingKey = false;
  private expectKey = false;
  private keyBytes: number[] = [];

  constructor(private readonly limits: JsonGuardLimits) {}

  /** Throws a ToolqError naming the problem as soon as the bytes so far break a limit. */
  scan(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as number;
      if (this.inString) {
        if (this.readingKey && this.keyBytes.length < 64 && !(c === QUOTE && !this.escaped))
          this.keyBytes.push(c);
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) {
          this.inString = false;
          if (this.readingKey) {
            this.readingKey = false;
            this.currentKey = Buffer.from(this.keyBytes).toString('utf8');
          }
        }
        continue;
      }
      if (WHITESPACE.has(c)) continue;
      if (this.depth === 2 && this.level2IsArray && this.level2Empty && c !== CLOSE_ARRAY) {
        this.level2Empty = false;
        this.level2Items = 1;
      }
      switch (c) {
        case QUOTE:
          this.inString = true;
          if (this.depth === 1 && this.expectKey) {
            this.readingKey = true;
            this.expectKey = false;
            this.keyBytes = [];
          }
          break;
        case OPEN_ARRAY:
        case OPEN_OBJECT:
          this.depth++;
          if (this.depth > this.limits.maxDepth) {
            throw new ToolqError(
              'INVALID_REQUEST',
              `the body nests deeper than ${this.limits.maxDepth} levels; flatten the tool input`,
            );
          }
          if (this.depth === 1) this.expectKey = c === OPEN_OBJECT;
          if (this.depth === 2) {
            this.level2IsArray = c === OPEN_ARRAY;
            this.level2Items = 0;
            this.level2Empty = true;
          }
          break;
        case CLOSE_ARRAY:
        case CLOSE_OBJECT:
          this.depth--;
          break;
        case COMMA:
          if (this.depth === 1) this.expectKey = true;
          else if (this.depth === 2 && this.level2IsArray && ++this.level2Items > this.limits.maxItems) {
            throw new ToolqError(
              'INVALID_REQUEST',
              `${this.currentKey || 'an array'}: at most ${this.limits.maxItems} items are allowed; split the work into several requests`,
            );
          }
          break;
      }
    }
  }
}
