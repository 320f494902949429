/**
 * The stdout of a stdio MCP server, line by line. The SDK's ReadBuffer stops reading a chunk at the
 * first line that is JSON but not JSON-RPC (the lines after it wait for the next chunk, so a server
 * that logs JSON before each answer is always one answer behind, or never finishes its handshake),
 * and drops an answer over 10 MB with nothing to say which call it was. Here every line is read:
 * one that is not a JSON-RPC message is skipped and reported, and one over the limit is discarded
 * as it streams in (never held whole), keeping its start and end to tell which request it answered.
 */
import { deserializeMessage, type JSONRPCMessage } from '@modelcontextprotocol/client';

/** The SDK's own limit for one stdio message. */
export const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
/** How much of an over-long line's start and end is kept to find its `id`. */
const EDGE_BYTES = 512;
const EXCERPT_CHARS = 200;

export type LineEvent =
  | { kind: 'message'; message: JSONRPCMessage }
  | { kind: 'skipped'; reason: string; excerpt: string }
  | { kind: 'overflow'; bytes: number; head: string; tail: string };

export class JsonRpcLineReader {
  private chunks: Buffer[] = [];
  private size = 0;
  /** The line being discarded for its size: its length so far, its start and its end. */
  private overflow: { bytes: number; head: Buffer; tail: Buffer } | undefined;

  constructor(private readonly maxBytes = MAX_MESSAGE_BYTES) {}

  push(chunk: Buffer): LineEvent[] {
    const events: LineEvent[] = [];
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(0x0a, start);
      this.take(chunk.subarray(start, end === -1 ? chunk.length : end));
      if (end === -1) return events;
      const event = this.endLine();
      if (event) events.push(event);
      start = end + 1;
    }
  }

  reset(): void {
    this.chunks = [];
    this.size = 0;
    this.overflow = undefined;
  }

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.overflow) {
      this.overflow.bytes += piece.length;
      this.overflow.tail = lastBytes(this.overflow.tail, piece);
      return;
    }
    if (this.size + piece.length <= this.maxBytes) {
      this.chunks.push(piece);
      this.size += piece.length;
      return;
    }
    const held = Buffer.concat(this.chunks);
    this.overflow = {
      bytes: this.size + piece.length,
      head: Buffer.concat([held.subarray(0, EDGE_BYTES), piece.subarray(0, EDGE_BYTES)]).subarray(
        0,
        EDGE_BYTES,
      ),
      tail: lastBytes(held.subarray(-EDGE_BYTES), piece),
    };
    this.chunks = [];
    this.size = 0;
  }

  private endLine(): LineEvent | undefined {
    const overflow = this.overflow;
    if (overflow) {
      this.overflow = undefined;
      return {
        kind: 'overflow',
        bytes: overflow.bytes,
        head: overflow.head.toString('utf8'),
        tail: overflow.tail.toString('utf8'),
      };
    }
    const line = Buffer.concat(this.chunks).toString('utf8').replace(/\r$/, '');
    this.chunks = [];
    this.size = 0;
    if (line.trim() === '') return undefined;
    try {
      return { kind: 'message', message: deserializeMessage(line) };
    } catch (err) {
      const reason = err instanceof SyntaxError ? 'not JSON' : 'JSON, but not a JSON-RPC message';
      return { kind: 'skipped', reason, excerpt: line.slice(0, EXCERPT_CHARS) };
    }
  }
}

function lastBytes(before: Buffer, piece: Buffer): Buffer {
  if (piece.length >= EDGE_BYTES) return Buffer.from(piece.subarray(-EDGE_BYTES));
  return Buffer.concat([before, piece]).subarray(-EDGE_BYTES);
}

const ID = String.raw`(-?\d+|"(?:[^"\\]|\\.)*")`;
/** `{"jsonrpc":"2.0","id":7,"result":…` (Python's SDK) or `{"id":7,…`. */
const ID_AT_START = new RegExp(String.raw`^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*${ID}`);
/** `…,"jsonrpc":"2.0","id":7}` (the TypeScript SDK) or `…,"id":7,"jsonrpc":"2.0"}`. */
const ID_AT_END = new RegExp(String.raw`"id"\s*:\s*${ID}\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*$`);

/**
 * Which of the requests waiting for an answer an over-long line answered: the id at its start or
 * its end, if a request with that id is waiting (an `id` inside the result is not taken for it),
 * else the only request waiting.
 */
export function answeredId(
  line: { head: string; tail: string },
  waiting: ReadonlySet<string | number>,
): string | number | undefined {
  for (const match of [ID_AT_START.exec(line.head), ID_AT_END.exec(line.tail)]) {
    if (!match?.[1]) continue;
    try {
      const id = JSON.parse(match[1]) as string | number;
      if (waiting.has(id)) return id;
    } catch {
      // an id cut at the edge: try the other end
    }
  }
  return waiting.size === 1 ? [...waiting][0] : undefined;
}
