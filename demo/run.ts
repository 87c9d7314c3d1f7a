// `npm run demo`: with `npm start` running, registers a local mock OAuth provider and three
// connections holding one-minute tokens, then prints every refresh the workers make.
// It talks to the api over HTTP only, exactly as an app would.
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { fields, grantsScope, readDevSecrets } from "@evergreen/config";
import { type MockProvider, startMockProvider } from "@evergreen/providers/testing";

const INTEGRATION_KEY = "demo";
const EXTERNAL_IDS = ["demo-user-1", "demo-user-2", "demo-user-3"];
const TOKEN_TTL_SECONDS = 60;
/** With 60 s tokens each connection refreshes about 45 s after its last token was issued. */
const REFRESH_BUFFER_SECONDS = 15;
const POLL_INTERVAL_MS = 1000;
/** Bounds every call, so that Ctrl-C always gets to the cleanup and the exit. */
const REQUEST_TIMEOUT_MS = 10_000;

interface ConnectionView {
  id: string;
  externalId: string;
  status: string;
  expiresAt: string | null;
  lastRefreshedAt: string | null;
  refreshCount: number;
  lastError: { code: string; message: string | null; at: string } | null;
}

interface TokenView {
  accessToken: string;
  tokenType: string;
  expiresAt: string | null;
}

class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface ApiClient {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
  /** Deletes; a resource that is already gone counts as deleted. */
  delete(path: string): Promise<void>;
}

function createApiClient(baseUrl: string, apiKey: string): ApiClient {
  const send = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.ok || (method === "DELETE" && response.status === 404)) return response;
    const error = (await response.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new ApiError(
      response.status,
      `${method} ${path} answered ${response.status} ${error.error ?? ""}: ${error.message ?? ""}`,
    );
  };
  return {
    // The api's answers are trusted to follow SPEC §3; the demo does not validate them.
    get: async <T>(path: string) => (await (await send("GET", path)).json()) as T,
    post: async <T>(path: string, body: unknown) =>
      (await (await send("POST", path, body)).json()) as T,
    delete: async (path) => {
      await send("DELETE", path);
    },
  };
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is in its cause. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function readMinutes(fromEnv: string | undefined): number | null {
  const { values } = parseArgs({ options: { minutes: { type: "string" } } });
  const raw = values.minutes ?? fromEnv;
  if (raw === undefined) return null;
  const minutes = Number(raw);
  if (!(minutes > 0)) fail(`--minutes / DEMO_MINUTES must be a positive number, got "${raw}"`);
  return minutes;
}

async function checkReady(baseUrl: string): Promise<void> {
  let response: Response;
  try {
    response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
  } catch {
    fail(`no Evergreen api at ${baseUrl}: start the system first: npm start in another terminal`);
  }
  if (!response.ok) {
    fail(
      `the api at ${baseUrl} is not ready (/readyz ${response.status}): are PostgreSQL and Redis up?`,
    );
  }
}

/**
 * A key `npm start` accepts with the admin scope the demo needs (it registers an
 * integration): the first such of API_KEYS, else the development key the apps keep in the
 * dev secrets file (read only: the demo never creates one).
 */
function resolveApiKey(): string {
  const spec = process.env.API_KEYS?.trim() ? process.env.API_KEYS : readDevSecrets()?.API_KEYS;
  const parsed = fields.apiKeys.safeParse(spec);
  const key = parsed.data?.find(({ scopes }) => grantsScope(scopes, "admin"))?.key;
  if (!key) fail("no API key: set API_KEYS to a key with the admin scope the api was started with");
  return key;
}

function registerIntegration(api: ApiClient, mock: MockProvider): Promise<unknown> {
  // POST is an upsert: a crashed earlier run's integration is pointed at this run's mock.
  return api.post("/v1/integrations", {
    key: INTEGRATION_KEY,
    provider: "oauth2",
    clientId: mock.clientId,
    clientSecret: mock.clientSecret,
    tokenUrl: mock.tokenUrl,
    refreshBufferSeconds: REFRESH_BUFFER_SECONDS,
  });
}

/** What an app does right after its OAuth callback; an existing connection takes the new tokens. */
function registerConnection(
  api: ApiClient,
  mock: MockProvider,
  externalId: string,
): Promise<ConnectionView> {
  // Rotating grants, like GitHub Apps or Box: a refresh token sent after its rotation
  // revokes the grant and shows up in the summary's reuse count.
  const grant = mock.issueGrant({ rotate: true, accessTokenTtlSeconds: TOKEN_TTL_SECONDS });
  return api.post("/v1/connections", {
    integration: INTEGRATION_KEY,
    externalId,
    accessToken: grant.accessToken,
    refreshToken: grant.refreshToken,
    expiresIn: grant.expiresIn,
  });
}

async function showTokenFetch(api: ApiClient, connection: ConnectionView): Promise<void> {
  const path = `/v1/connections/${connection.id}/token?minValidity=30`;
  const token = await api.get<TokenView>(path);
  console.log(`an app asks for a token before calling the provider: GET ${path}`);
  console.log(
    `  -> ${token.tokenType} ${token.accessToken.slice(0, 14)}... valid until ${clock(token.expiresAt)}\n`,
  );
}

function clock(iso: string | null): string {
  return iso === null ? "--:--:--" : new Date(iso).toLocaleTimeString("en-GB", { hour12: false });
}

function secondsBetween(from: string | null, to: string | null): string {
  if (from === null || to === null) return "?";
  return ((Date.parse(to) - Date.parse(from)) / 1000).toFixed(1);
}

const HEADER = `${"time".padEnd(10)}${"connection".padEnd(13)}${"old expiry -> new expiry".padEnd(27)}${"left on old".padEnd(13)}${"provider calls".padEnd(16)}outcome`;

/** One line when a refresh succeeded or a new error was recorded since the last poll. */
function describeChange(
  before: ConnectionView,
  after: ConnectionView,
  providerCalls: number,
): string | null {
  const refreshed = after.refreshCount > before.refreshCount;
  const failed = after.lastError !== null && after.lastError.at !== before.lastError?.at;
  if (!refreshed && !failed) return null;
  const at = refreshed ? after.lastRefreshedAt : (after.lastError?.at ?? null);
  const outcome = refreshed
    ? "success"
    : `${after.lastError?.code} (status ${after.status}: ${after.lastError?.message ?? ""})`;
  return [
    clock(at).padEnd(10),
    after.externalId.padEnd(13),
    `${clock(before.expiresAt)} -> ${refreshed ? clock(after.expiresAt) : "(kept)"}`.padEnd(27),
    `${secondsBetween(at, before.expiresAt)} s`.padEnd(13),
    String(providerCalls).padEnd(16),
    outcome,
  ].join("");
}

/** Polls each connection until `signal` aborts; returns how many refreshes it saw. */
async function watchRefreshes(
  api: ApiClient,
  mock: MockProvider,
  connections: readonly ConnectionView[],
  signal: AbortSignal,
): Promise<number> {
  const last = new Map(connections.map((connection) => [connection.id, connection]));
  let refreshes = 0;
  console.log(HEADER);
  while (!signal.aborted) {
    const lines: string[] = [];
    for (const [id, before] of last) {
      const after = await api.get<ConnectionView>(`/v1/connections/${id}`);
      const line = describeChange(before, after, mock.requests);
      if (line !== null) lines.push(line);
      refreshes += after.refreshCount - before.refreshCount;
      last.set(id, after);
    }
    // Each line starts with the time of its change: sorted, one poll's changes read in order.
    for (const line of lines.sort()) console.log(line);
    // Rejects only when `signal` aborts, which ends the loop.
    await sleep(POLL_INTERVAL_MS, undefined, { signal }).catch(() => undefined);
  }
  return refreshes;
}

/** Without this, workers would keep retrying connections whose provider has gone away. */
async function removeDemo(api: ApiClient, connections: readonly ConnectionView[]): Promise<void> {
  try {
    for (const connection of connections) await api.delete(`/v1/connections/${connection.id}`);
    await api.delete(`/v1/integrations/${INTEGRATION_KEY}`);
    console.log(`removed the "${INTEGRATION_KEY}" integration and its connections`);
  } catch (error) {
    console.error(
      `could not remove the demo data (${describeError(error)}); the next npm run demo takes it over`,
    );
  }
}

/** Registers the connections, watches them until `signal` aborts, then removes the demo data. */
async function runConnections(
  api: ApiClient,
  mock: MockProvider,
  minutes: number | null,
  signal: AbortSignal,
): Promise<number> {
  const connections: ConnectionView[] = [];
  try {
    for (const externalId of EXTERNAL_IDS) {
      const connection = await registerConnection(api, mock, externalId);
      connections.push(connection);
      console.log(
        `connection ${externalId}: ${connection.id}, expires ${clock(connection.expiresAt)}`,
      );
    }
    console.log();
    const [first] = connections;
    if (first !== undefined) await showTokenFetch(api, first);
    console.log(
      `watching; each refresh is printed as it happens${minutes === null ? "" : ` for ${minutes} min`} (Ctrl-C stops and removes the demo data)\n`,
    );
    return await watchRefreshes(api, mock, connections, signal);
  } finally {
    console.log();
    await removeDemo(api, connections);
  }
}

async function main(): Promise<number> {
  // npm runs the demo directly, never turbo, so these need no turbo.json entry.
  const { EVERGREEN_URL, PORT, DEMO_MINUTES } = process.env;
  const minutes = readMinutes(DEMO_MINUTES);
  const baseUrl = (EVERGREEN_URL ?? `http://127.0.0.1:${PORT ?? 3000}`).replace(/\/+$/, "");
  await checkReady(baseUrl);
  const api = createApiClient(baseUrl, resolveApiKey());

  const stop = new AbortController();
  // `npm run` and tsx relay Ctrl-C, so it can arrive more than once: every one just stops.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => stop.abort());
  if (minutes !== null) setTimeout(() => stop.abort(), minutes * 60_000).unref();

  const mock = await startMockProvider();
  let refreshes: number;
  try {
    console.log(`Evergreen api: ${baseUrl}`);
    console.log(
      `mock OAuth provider: ${mock.tokenUrl} (${TOKEN_TTL_SECONDS} s access tokens; refresh tokens rotate on every use)`,
    );
    await registerIntegration(api, mock);
    console.log(
      `integration "${INTEGRATION_KEY}": refresh ${REFRESH_BUFFER_SECONDS} s (plus up to 10 %) before expiry`,
    );
    refreshes = await runConnections(api, mock, minutes, stop.signal);
  } finally {
    await mock.close();
  }
  console.log(
    `${refreshes} refreshes seen, ${mock.requests} provider calls, rotated refresh tokens reused: ${mock.reuseCount} (must be 0)`,
  );
  return mock.reuseCount === 0 ? 0 : 1;
}

function describeFailure(error: unknown): string {
  if (error instanceof ApiError && error.status === 401) {
    return "the api refused the API key: set API_KEYS to one of the keys the api was started with";
  }
  return `demo failed: ${describeError(error)}`;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => fail(describeFailure(error)),
);
