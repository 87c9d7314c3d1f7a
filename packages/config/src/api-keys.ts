/**
 * What an API key may do (SPEC §4). `admin` implies the others: the key that configures
 * integrations and webhooks could point them anywhere, so denying it a token read would
 * protect nothing.
 */
export const API_SCOPES = ["tokens:read", "connections:write", "admin"] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export interface ApiKey {
  /**
   * What logs call the key: the name given in `name:key:scopes`, or `key<N>` for a bare
   * key, N being its position in API_KEYS (1-based), so an operator finds it at once.
   */
  readonly name: string;
  /** The bearer secret. Never logged, printed or compared other than in constant time. */
  readonly key: string;
  /** A bare key holds them all (today's meaning of API_KEYS). */
  readonly scopes: readonly ApiScope[];
}

/** Whether a key with `scopes` may use a route that needs `needed`. */
export function grantsScope(scopes: readonly ApiScope[], needed: ApiScope): boolean {
  return scopes.includes("admin") || scopes.includes(needed);
}

/** Below this a key draws a warning at start: guessable, but the operator's choice. */
const MIN_API_KEY_LENGTH = 16;

/** Names land in every access line: a short word, nothing to escape. */
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** The names bare keys get: a named key may not take one, or a log line would be ambiguous. */
const BARE_NAME = /^key\d+$/;

/**
 * Parses API_KEYS: comma-separated entries, each a bare key or `name:key:scope+scope`.
 * Returns one problem per fault. A problem names an entry by its position only: an entry
 * written in the wrong order (`key:name:scopes`) would otherwise show its key as a name.
 */
export function parseApiKeys(spec: string): {
  readonly keys: readonly ApiKey[];
  readonly problems: readonly string[];
} {
  const entries = spec
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (entries.length === 0) return { keys: [], problems: ["needs at least one key"] };
  const problems: string[] = [];
  const keys: ApiKey[] = [];
  const byName = new Map<string, number>();
  const byKey = new Map<string, number>();
  entries.forEach((entry, index) => {
    const position = index + 1;
    const { apiKey, problems: entryProblems } = parseEntry(entry, position);
    const earlierName = byName.get(apiKey.name);
    if (earlierName !== undefined) entryProblems.push(`the same name as entry ${earlierName}`);
    else if (apiKey.name) byName.set(apiKey.name, position);
    const earlierKey = byKey.get(apiKey.key);
    if (earlierKey !== undefined) entryProblems.push(`the same key as entry ${earlierKey}`);
    else if (apiKey.key) byKey.set(apiKey.key, position);
    for (const problem of entryProblems) problems.push(`entry ${position}: ${problem}`);
    if (entryProblems.length === 0) keys.push(apiKey);
  });
  return { keys: problems.length === 0 ? keys : [], problems };
}

/**
 * Keys shorter than MIN_API_KEY_LENGTH: refused in production (the api's env schema),
 * taken with a warning elsewhere, since SPEC §4 sets no length and test rigs and local
 * setups use short keys.
 */
export function shortApiKeys(keys: readonly ApiKey[]): ApiKey[] {
  return keys.filter(({ key }) => key.length < MIN_API_KEY_LENGTH);
}

/** A warning per short key (shortApiKeys), naming it by its name, never showing it. */
export function shortApiKeyWarnings(keys: readonly ApiKey[]): string[] {
  return shortApiKeys(keys).map(
    ({ name }) =>
      `API_KEYS: the key named ${name} has fewer than ${MIN_API_KEY_LENGTH} characters and is easy to guess; use a long random one (openssl rand -hex 24 makes one)`,
  );
}

/** What production refuses (see shortApiKeys). */
export const SHORT_KEYS_IN_PRODUCTION = `keys under ${MIN_API_KEY_LENGTH} characters are refused in production; use long random ones (openssl rand -hex 24 makes one)`;

function parseEntry(entry: string, position: number): { apiKey: ApiKey; problems: string[] } {
  const problems: string[] = [];
  if (!entry.includes(":")) {
    // A bare key. Its name is its position: stable while the list is only appended to,
    // and unlike a hash of the key it gives nothing to test a guessed key against.
    if (WHITESPACE.test(entry)) problems.push(HOLDS_WHITESPACE);
    return { apiKey: { name: `key${position}`, key: entry, scopes: [...API_SCOPES] }, problems };
  }
  // Scopes hold a ":" themselves: the name and the key are the first two fields, the
  // scopes all the rest.
  const [name = "", key = "", ...rest] = entry.split(":");
  if (rest.length === 0) return { apiKey: { name: "", key: "", scopes: [] }, problems: [FORMAT] };
  if (name === "") problems.push("the name is empty");
  else if (!NAME.test(name)) problems.push("a name is 1-64 of A-Z a-z 0-9 . _ -");
  else if (BARE_NAME.test(name)) problems.push("names key1, key2, ... are kept for bare keys");
  if (key === "") problems.push("the key is empty");
  else if (WHITESPACE.test(key)) problems.push(HOLDS_WHITESPACE);
  const scopes: ApiScope[] = [];
  const scopeList = rest.join(":");
  if (scopeList === "") problems.push(`no scopes: give one or more of ${KNOWN}`);
  for (const scope of scopeList === "" ? [] : scopeList.split("+")) {
    if (!isScope(scope)) problems.push(unknownScope(scope));
    else if (!scopes.includes(scope)) scopes.push(scope);
  }
  return { apiKey: { name, key, scopes }, problems };
}

/** A bearer key with whitespace cannot be sent in an Authorization header as one token. */
const WHITESPACE = /\s/;
const HOLDS_WHITESPACE = "the key holds whitespace";
const KNOWN = API_SCOPES.join(", ");
const FORMAT = "must be a bare key or name:key:scope+scope";

/** The words scopes are made of, singular: `token`, `read`, `connection`, `write`, `admin`. */
const SCOPE_WORDS = new Set(API_SCOPES.flatMap((scope) => scope.split(":")).map(singular));

function singular(word: string): string {
  return word.replace(/s$/, "");
}

/**
 * Shows the unknown scope when it is made of scope words (`tokens:write`, `token:read`,
 * the likely typos). Anything else may be part of a key: a key holding colons splits
 * into name, key and scopes, and its tail, lower-case letters say, must not be printed.
 */
function unknownScope(scope: string): string {
  const words = scope.split(":");
  const shown =
    words.length <= 2 && words.every((word) => SCOPE_WORDS.has(singular(word)))
      ? ` ${JSON.stringify(scope)}`
      : "";
  return `unknown scope${shown} (known: ${KNOWN})`;
}

function isScope(value: string): value is ApiScope {
  return (API_SCOPES as readonly string[]).includes(value);
}
