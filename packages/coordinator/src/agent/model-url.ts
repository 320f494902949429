/**
 * The model's base URL as it may be shown. A gateway's URL can carry credentials (a user and
 * password, a key in the query or even the path), and an error's text ends up in the run's record,
 * its event log and the coordinator's log: only the origin (scheme, host, port) is ever shown.
 */

/** Keys shorter than this are not masked where they appear outside a URL: `1` or `on` would mask noise. */
const MIN_SECRET_LENGTH = 4;
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()]+/gi;

/** `http://user:pw@gw:8080/v1?key=k` → `http://gw:8080`. */
export function originOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return '(a URL that does not parse)';
  }
}

/**
 * Text from the SDK, fetch or a gateway with every URL that could carry a secret (the gateway's
 * own, or any with a user, password or query) cut to its origin, and whatever of the base URL
 * could be a secret (user, password, query values) masked wherever else it appears. Other URLs
 * (an API error's link to its docs) stay whole.
 */
export function withoutUrlSecrets(text: string, baseURL: string | undefined): string {
  const gatewayHost = hostOf(baseURL);
  let out = text.replace(URL_IN_TEXT, (match) => {
    // A sentence's punctuation after a URL is not part of it (`… at http://gw:8080: refused`).
    const trailing = /[.,:;!?]+$/.exec(match)?.[0] ?? '';
    const url = match.slice(0, match.length - trailing.length);
    return (mayHoldSecrets(url, gatewayHost) ? originOf(url) : url) + trailing;
  });
  for (const secret of secretsOf(baseURL)) out = out.split(secret).join('***');
  return out;
}

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

function mayHoldSecrets(url: string, gatewayHost: string | undefined): boolean {
  try {
    const parsed = new URL(url);
    return (
      parsed.host === gatewayHost || parsed.username !== '' || parsed.password !== '' || parsed.search !== ''
    );
  } catch {
    return true;
  }
}

function secretsOf(baseURL: string | undefined): string[] {
  if (!baseURL) return [];
  let parsed: URL;
  try {
    parsed = new URL(baseURL);
  } catch {
    return [baseURL];
  }
  const raw = [parsed.username, parsed.password, ...[...parsed.searchParams.values()]];
  const all = raw.flatMap((s) => [s, safeDecode(s), encodeURIComponent(s)]);
  // Longest first: a secret that contains another is masked whole.
  return [...new Set(all)].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
