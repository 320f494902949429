/**
 * A run's conversation is stored once: a checkpoint or result keeps only the messages after the
 * ones its request holds already, and gets them back when read.
 */

/** The messages a run's conversation starts from: its request's `messages`, or its `prompt`. */
function requestConversation(request: unknown): unknown[] {
  const r = (request ?? {}) as { messages?: unknown; prompt?: unknown };
  if (Array.isArray(r.messages) && r.messages.length > 0) return r.messages;
  if (typeof r.prompt === 'string' && r.prompt !== '') return [{ role: 'user', content: r.prompt }];
  return [];
}

/**
 * A checkpoint or result as stored: its `messages` without those the request holds already,
 * which would otherwise be kept twice (a 9 MB request made a 21 MB run). Unchanged when the
 * conversation does not start with them.
 */
export function withoutRequestMessages<T extends { messages: readonly unknown[] }>(
  value: T,
  request: unknown,
): T | (Omit<T, 'messages'> & { messages: unknown[]; request_messages: number }) {
  const head = requestConversation(request);
  if (head.length === 0 || value.messages.length < head.length) return value;
  const same = head.every((m, i) => JSON.stringify(m) === JSON.stringify(value.messages[i]));
  return same
    ? { ...value, messages: value.messages.slice(head.length), request_messages: head.length }
    : value;
}

/** The inverse of withoutRequestMessages, for anything read back. */
export function withRequestMessages(value: unknown, request: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const { request_messages: n, ...rest } = value as { request_messages?: unknown; messages?: unknown };
  if (typeof n !== 'number' || !Array.isArray(rest.messages)) return value;
  return { ...rest, messages: [...requestConversation(request).slice(0, n), ...rest.messages] };
}
