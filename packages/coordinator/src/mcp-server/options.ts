/** The MCP endpoint's settings and their defaults, in one place. */

export const MCP_DEFAULTS = {
  /** Where the endpoint is served. */
  path: '/mcp',
  /** A session nobody used this long is forgotten (the client then initializes again): 24 h. */
  sessionIdleMs: 24 * 60 * 60 * 1_000,
  /** SSE comment frames keep idle streams (and the proxies on their way) open. */
  keepAliveMs: 15_000,
  /** The `_meta` key in which a client may send its own time limit for a `tools/call`, in ms. */
  timeoutMetaKey: 'toolq/timeoutMs',
  serverName: 'toolq',
  /** A cancel that finds no running call is remembered this long, for a call it overtook. */
  cancelMemoryMs: 60_000,
} as const;
