/**
 * A Server-Sent Events parser as the WHATWG spec reads a stream (the EventSource algorithm):
 * lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next are
 * one line end); `data:` lines of one event are joined with LF; `:` lines are comments (keep-alives);
 * `id:` persists until changed; `retry:` takes digits only; an event is dispatched at a blank line
 * and only if it has data; an event cut off by the end of the stream is dropped.
 */

export interface SseMessage {
  /** The last `id:` seen on this stream so far ('' before any). */
  id: string;
  /** `event:`, or `message` when none was given. */
  event: string;
  data: string;
}

export class SseParser {
  /** The next reconnection delay the server asked for (`retry:`), if it did. */
  retryMs: number | undefined;
  private lastEventId = '';
  private eventType = '';
  private data = '';
  /** A line not yet ended. */
  private partial = '';
  /** The last chunk ended in CR: an LF starting the next one belongs to that line end. */
  private afterCr = false;
  // One decoder per stream: it keeps a UTF-8 sequence split across chunks, and drops a leading BOM.
  private readonly decoder = new TextDecoder();

  constructor(lastEventId = '') {
    this.lastEventId = lastEventId;
  }

  /** Bytes of the stream, in order; answers the events they complete. */
  push(chunk: Uint8Array): SseMessage[] {
    return this.feed(this.decoder.decode(chunk, { stream: true }));
  }

  /** Text of the stream, in order (for callers that decoded it already). */
  feed(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    let start = 0;
    if (this.afterCr && text.startsWith('\n')) start = 1;
    this.afterCr = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      const line = this.partial + text.slice(start, i);
      this.partial = '';
      this.line(line, out);
      if (c === 0x0d) {
        if (i + 1 >= text.length) this.afterCr = true;
        else if (text.charCodeAt(i + 1) === 0x0a) i++;
      }
      start = i + 1;
    }
    this.partial += text.slice(start);
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === '') {
      this.dispatch(out);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += `${value}\n`;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
      // Unknown fields are ignored, as the spec says.
    }
  }

  private dispatch(out: SseMessage[]): void {
    const { data, eventType } = this;
    this.data = '';
    this.eventType = '';
    if (data === '') return;
    out.push({ id: this.lastEventId, event: eventType || 'message', data: data.slice(0, -1) });
  }
}
