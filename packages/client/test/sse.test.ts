/** The client's SSE parser, fed the stream in every split: what a proxy or TCP may do to it. */
import { describe, expect, it } from 'vitest';
import { SseParser } from '../src/sse.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

/** The events of `text` fed in one piece, and fed one byte at a time: both must agree. */
function parse(text: string) {
  const whole = new SseParser().push(bytes(text));
  const bytewise = new SseParser();
  const split = [...bytes(text)].flatMap((b) => bytewise.push(Uint8Array.of(b)));
  expect(split).toEqual(whole);
  return whole;
}

describe('SseParser', () => {
  it('reads id, event and data, the default type, and the id that persists', () => {
    expect(parse('id: 1-0\nevent: text\ndata: {"a":1}\n\ndata: plain\n\n')).toEqual([
      { id: '1-0', event: 'text', data: '{"a":1}' },
      { id: '1-0', event: 'message', data: 'plain' },
    ]);
  });

  it('joins multi-line data with LF, and takes one space after the colon only', () => {
    expect(parse('data:one\ndata:  two\ndata\n\n')).toEqual([
      { id: '', event: 'message', data: 'one\n two\n' },
    ]);
  });

  it('ends lines at CRLF, LF or CR alike, a CRLF split across chunks included', () => {
    const text = 'id: 2-0\r\nevent: done\r\ndata: a\r\rdata: b\n\r\n';
    expect(parse(text)).toEqual([
      { id: '2-0', event: 'done', data: 'a' },
      { id: '2-0', event: 'message', data: 'b' },
    ]);
    const parser = new SseParser();
    expect(parser.push(bytes('data: x\r'))).toEqual([]);
    // The LF completing that CRLF is not a second (blank) line: nothing is dispatched yet.
    expect(parser.push(bytes('\ndata: y\r'))).toEqual([]);
    expect(parser.push(bytes('\r'))).toEqual([{ id: '', event: 'message', data: 'x\ny' }]);
  });

  it('skips comments (keep-alives) and events without data; a cut-off event is not dispatched', () => {
    expect(parse(': keep-alive\n\nevent: text\n\n: hi\ndata: 1\n\ndata: cut')).toEqual([
      { id: '', event: 'message', data: '1' },
    ]);
  });

  it('keeps retry: of digits only, ignores unknown fields and ids with NUL, drops a leading BOM', () => {
    const parser = new SseParser('0-1');
    const events = parser.push(bytes('\uFEFFretry: 1500\nfoo: bar\nid: a\0b\ndata: x\n\nretry: 2s\n\n'));
    expect(events).toEqual([{ id: '0-1', event: 'message', data: 'x' }]);
    expect(parser.retryMs).toBe(1500);
  });

  it('keeps a UTF-8 character split across chunks whole', () => {
    const encoded = bytes('data: é✓\n\n');
    const parser = new SseParser();
    const events = [...encoded].flatMap((b) => parser.push(Uint8Array.of(b)));
    expect(events).toEqual([{ id: '', event: 'message', data: 'é✓' }]);
  });
});
