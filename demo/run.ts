// `npm run demo`: with `npm start` running, plays an app. It connects three users to a local
// mock OAuth provider through Evergreen's connect flow, hears about their connections on a
// signed webhook, and prints every refresh the workers make of their one-minute tokens. One
// user then revokes the app's access at the provider: the next refresh meets invalid_grant,
// the webhook says connection.needs_reauth, and the app sends that user through the connect
// flow again. It talks to the api over HTTP only, exactly as an app would.
import { parseArgs } from "node:util";
import { fields, grantsScope, readDevSecrets } from "@evergreen/config";
import { type MockProvider, startMockProvider } from "@evergreen/providers/testing";
import {
  type ApiClient,
  ApiError,
  type ConnectionView,
  clock,
  createApiClient,
  describeError,
  type TokenView,
} from "./api";
import { DemoApp, WEBHOOK_PATH, type WebhookEvent } from "./app-server";
import {
  type ConnectContext,
  connectUser,
  INTEGRATION_KEY,
  REFRESH_BUFFER_SECONDS,
  registerIntegration,
} from "./connect";
import { HEADER, watchRefreshes } from "./watch";

const EXTERNAL_IDS = ["demo-user-1", "demo-user-2", "demo-user-3"];
const TOKEN_TTL_SECONDS = 60;
/** Revokes access at the provider after its first refresh, so the refresh after fails. */
const REVOKING_USER = "demo-user-3";
const WEBHOOK_EVENTS = [
  "connection.created",
  "connection.refresh_failed",
  "connection.recovered",
  "connection.needs_reauth",
  "connection.error",
  "connection.deleted",
];
/** How long the cleanup waits for the connection.deleted events before removing the endpoint. */
const DELETED_EVENTS_WAIT_MS = 5_000;

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function readOptions(minutesFromEnv: string | undefined) {
  const { values } = parseArgs({
    options: { minutes: { type: "string" }, interactive: { type: "boolean", default: false } },
  });
  const raw = values.minutes ?? minutesFromEnv;
  const minutes = raw === undefined ? null : Number(raw);
  if (minutes !== null && !(minutes > 0)) {
    fail(`--minutes / DEMO_MINUTES must be a positive number, got "${raw}"`);
  }
  return { minutes, interactive: values.interactive };
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
 * integration and a webhook): the first such of API_KEYS, else the development key the apps
 * keep in the dev secrets file (read only: the demo never creates one).
 */
function resolveApiKey(): string {
  const spec = process.env.API_KEYS?.trim() ? process.env.API_KEYS : readDevSecrets()?.API_KEYS;
  const parsed = fields.apiKeys.safeParse(spec);
  const key = parsed.data?.find(({ scopes }) => grantsScope(scopes, "admin"))?.key;
  if (!key) fail("no API key: set API_KEYS to a key with the admin scope the api was started with");
  return key;
}

/** Registers the demo app's endpoint for every event; returns its id. */
async function registerWebhook(api: ApiClient, app: DemoApp): Promise<string> {
  // A crashed earlier run's endpoint would be retried for 3 days against a closed port.
  const { data } = await api.get<{ data: { id: string; url: string }[] }>("/v1/webhooks");
  const isDemos = (url: URL) => url.hostname === "127.0.0.1" && url.pathname === WEBHOOK_PATH;
  for (const stale of data.filter(({ url }) => isDemos(new URL(url)))) {
    await api.delete(`/v1/webhooks/${stale.id}`);
  }
  const endpoint = await api.post<{ id: string; secret: string }>("/v1/webhooks", {
    url: app.webhookUrl,
    events: WEBHOOK_EVENTS,
  });
  app.trustWebhookSecret(endpoint.secret);
  console.log(
    "webhook endpoint registered for every event; each delivery's signature is checked with its whsec_ secret",
  );
  return endpoint.id;
}

function printEvent({ type, data }: WebhookEvent): void {
  const error = data.error === null ? "" : `, ${data.error.code}: ${data.error.message ?? ""}`;
  console.log(
    `${clock(new Date().toISOString()).padEnd(10)}${data.externalId.padEnd(13)}webhook ${type} (status ${data.status}${error})`,
  );
}

async function showTokenFetch(api: ApiClient, connection: ConnectionView): Promise<void> {
  const path = `/v1/connections/${connection.id}/token?minValidity=30`;
  const token = await api.get<TokenView>(path);
  console.log(`an app asks for a token before calling the provider: GET ${path}`);
  console.log(
    `  -> ${token.tokenType} ${token.accessToken.slice(0, 14)}... valid until ${clock(token.expiresAt)}\n`,
  );
}

/**
 * The user revokes the app's access in their account at the provider. The app holds no
 * refresh token (Evergreen does), so the mock is told which grant by an access token.
 */
async function revokeAtProvider(
  api: ApiClient,
  mock: MockProvider,
  connection: ConnectionView,
): Promise<void> {
  const token = await api.get<TokenView>(`/v1/connections/${connection.id}/token?minValidity=10`);
  mock.revoke(token.accessToken);
  console.log(
    `${clock(new Date().toISOString()).padEnd(10)}${connection.externalId.padEnd(13)}revokes the app's access at the provider; its next refresh will fail`,
  );
}

/** Without this, workers would keep retrying connections whose provider has gone away. */
async function removeDemo(
  api: ApiClient,
  app: DemoApp,
  connections: readonly ConnectionView[],
  webhookId: string | null,
): Promise<void> {
  try {
    for (const connection of connections) await api.delete(`/v1/connections/${connection.id}`);
    if (webhookId !== null) {
      const deleted = (events: readonly WebhookEvent[]) =>
        connections.every(({ id }) =>
          events.some((e) => e.type === "connection.deleted" && e.data.connectionId === id),
        );
      if (!(await app.waitForEvents(deleted, DELETED_EVENTS_WAIT_MS))) {
        console.log("(not every connection.deleted webhook came within 5 s)");
      }
      await api.delete(`/v1/webhooks/${webhookId}`);
    }
    await api.delete(`/v1/integrations/${INTEGRATION_KEY}`);
    console.log(`removed the "${INTEGRATION_KEY}" integration, its connections and the webhook`);
  } catch (error) {
    console.error(
      `could not remove the demo data (${describeError(error)}); the next npm run demo takes it over`,
    );
  }
}

/** Sets everything up, watches until `connect.signal` aborts, then removes the demo data. */
async function runDemo(
  connect: ConnectContext,
  mock: MockProvider,
  minutes: number | null,
  reconnects: Set<Promise<unknown>>,
): Promise<number> {
  const { api, app, signal } = connect;
  const connections: ConnectionView[] = [];
  let webhookId: string | null = null;
  try {
    await registerIntegration(api, mock, app);
    console.log(
      `integration "${INTEGRATION_KEY}": refresh ${REFRESH_BUFFER_SECONDS} s (plus up to 10 %) before expiry`,
    );
    webhookId = await registerWebhook(api, app);
    console.log();
    for (const externalId of EXTERNAL_IDS) connections.push(await connectUser(connect, externalId));
    console.log();
    const [first] = connections;
    if (first !== undefined) await showTokenFetch(api, first);
    console.log(
      `watching; each refresh and webhook is printed as it happens${minutes === null ? "" : ` for ${minutes} min`} (Ctrl-C stops and removes the demo data)\n`,
    );
    console.log(HEADER);
    let revoked = false;
    return await watchRefreshes(api, mock, connections, signal, async (connection) => {
      if (revoked || connection.externalId !== REVOKING_USER) return;
      revoked = true;
      await revokeAtProvider(api, mock, connection);
    });
  } catch (error) {
    // Stopped while waiting for someone to open a link: a stop like any other.
    if (!signal.aborted) throw error;
    return 0;
  } finally {
    await Promise.allSettled(reconnects);
    console.log();
    await removeDemo(api, app, connections, webhookId);
  }
}

function summarize(events: readonly WebhookEvent[]): string {
  const counts = new Map<string, number>();
  for (const { type } of events) counts.set(type, (counts.get(type) ?? 0) + 1);
  return [...counts].map(([type, count]) => `${count} ${type}`).join(", ") || "none";
}

async function main(): Promise<number> {
  // npm runs the demo directly, never turbo, so these need no turbo.json entry.
  const { EVERGREEN_URL, PORT, DEMO_MINUTES } = process.env;
  const { minutes, interactive } = readOptions(DEMO_MINUTES);
  const baseUrl = (EVERGREEN_URL ?? `http://127.0.0.1:${PORT ?? 3000}`).replace(/\/+$/, "");
  await checkReady(baseUrl);
  const api = createApiClient(baseUrl, resolveApiKey());

  const stop = new AbortController();
  // `npm run` and tsx relay Ctrl-C, so it can arrive more than once: every one just stops.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => stop.abort());
  if (minutes !== null) setTimeout(() => stop.abort(), minutes * 60_000).unref();

  // Rotating grants, like GitHub Apps or Box: a refresh token sent after its rotation
  // revokes the grant and shows up in the summary's reuse count.
  const mock = await startMockProvider({
    consentGrant: { rotate: true, accessTokenTtlSeconds: TOKEN_TTL_SECONDS },
  });
  const reconnects = new Set<Promise<unknown>>();
  const app: DemoApp = new DemoApp({
    integration: INTEGRATION_KEY,
    onEvent(event) {
      printEvent(event);
      // What an app does with needs_reauth: ask the user to connect again.
      if (event.type !== "connection.needs_reauth" || stop.signal.aborted) return;
      const { externalId } = event.data;
      console.log(`${externalId}: the app asks the user to connect again`);
      const again = connectUser(connect, externalId).catch((error: unknown) => {
        if (!stop.signal.aborted) console.error(`${externalId}: ${describeError(error)}`);
      });
      reconnects.add(again);
    },
    onRejected: (problem) => console.log(`webhook rejected (401): ${problem}`),
  });
  const connect: ConnectContext = { api, app, interactive, signal: stop.signal };
  await app.listen();
  let refreshes: number;
  try {
    console.log(`Evergreen api: ${baseUrl}`);
    console.log(
      `mock OAuth provider: ${mock.url} (${TOKEN_TTL_SECONDS} s access tokens; refresh tokens rotate on every use)`,
    );
    console.log(`the demo app: ${app.returnUrlBase} (return page), ${app.webhookUrl} (webhooks)`);
    refreshes = await runDemo(connect, mock, minutes, reconnects);
  } finally {
    await app.close();
    await mock.close();
  }
  console.log(`webhooks verified: ${summarize(app.events)}; rejected: ${app.rejected}`);
  console.log(
    `${refreshes} refreshes seen, ${mock.requests} provider calls, rotated refresh tokens reused: ${mock.reuseCount} (must be 0)`,
  );
  return mock.reuseCount === 0 && app.rejected === 0 ? 0 : 1;
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
