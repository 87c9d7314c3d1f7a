// The connect flow as an app drives it: a session from Evergreen, the user's browser at the
// provider's consent page, and back through Evergreen's callback to the app's return page.
import type { MockProvider } from "@evergreen/providers/testing";
import { type ApiClient, type ConnectionView, clock } from "./api";
import type { DemoApp } from "./app-server";

export const INTEGRATION_KEY = "demo";
/** With 60 s tokens each connection refreshes about 45 s after its last token was issued. */
export const REFRESH_BUFFER_SECONDS = 15;
/** A timeout for the demo acting as the browser; a person clicking has no deadline. */
const AUTO_APPROVE_TIMEOUT_MS = 15_000;

export interface ConnectContext {
  readonly api: ApiClient;
  readonly app: DemoApp;
  /** Wait for a person to open each link, instead of approving as the user. */
  readonly interactive: boolean;
  readonly signal: AbortSignal;
}

export function registerIntegration(
  api: ApiClient,
  mock: MockProvider,
  app: DemoApp,
): Promise<unknown> {
  // POST is an upsert: a crashed earlier run's integration is pointed at this run's mock.
  return api.post("/v1/integrations", {
    key: INTEGRATION_KEY,
    provider: "oauth2",
    clientId: mock.clientId,
    clientSecret: mock.clientSecret,
    tokenUrl: mock.tokenUrl,
    authorizationUrl: mock.authorizationUrl,
    scopes: ["profile"],
    // The connect flow only ever sends users back to the demo app's own page.
    returnUrls: [app.returnUrlBase],
    refreshBufferSeconds: REFRESH_BUFFER_SECONDS,
  });
}

/**
 * Sends `externalId` through the connect flow until it comes back connected (a person who
 * clicks Deny, or waits past the 10 minutes, gets a new link) and returns the connection.
 */
export async function connectUser(
  { api, app, interactive, signal }: ConnectContext,
  externalId: string,
): Promise<ConnectionView> {
  for (;;) {
    const session = await api.post<{ url: string; expiresAt: string }>("/v1/connect-sessions", {
      integration: INTEGRATION_KEY,
      externalId,
      returnUrl: app.returnUrl(externalId),
    });
    // No browser can come back before it has the URL, so this waits from here on.
    const returned = app.expectReturn(externalId, signal);
    console.log(`${externalId}: open ${session.url}`);
    if (interactive) {
      console.log("  (click Allow in a browser, or: curl -sL '<that URL>&approve=1')");
    }
    // Awaited together, so that a failed approval leaves no return promise unobserved.
    const [result] = await Promise.all([
      returned,
      interactive ? undefined : approveAsTheUser(session.url, signal),
    ]);
    if ("connectionId" in result) {
      const connection = await api.get<ConnectionView>(`/v1/connections/${result.connectionId}`);
      console.log(
        `  -> back at the app: connection ${connection.id}, ${connection.status}, token until ${clock(connection.expiresAt)}`,
      );
      return connection;
    }
    if (!interactive) {
      throw new Error(`the connect flow of ${externalId} ended with error=${result.error}`);
    }
    console.log(`  -> back at the app with error=${result.error}; here is a new link`);
  }
}

/**
 * Exactly what a browser does after the click: the consent page's Allow link, then the
 * provider's redirect to Evergreen's callback, then Evergreen's to the app's return page.
 */
async function approveAsTheUser(url: string, signal: AbortSignal): Promise<void> {
  const approve = new URL(url);
  approve.searchParams.set("approve", "1");
  const response = await fetch(approve, {
    signal: AbortSignal.any([signal, AbortSignal.timeout(AUTO_APPROVE_TIMEOUT_MS)]),
  });
  await response.body?.cancel();
  // Evergreen answers a callback it cannot trust with a page of its own, not a redirect.
  if (!response.ok) throw new Error(`approving ended at ${response.url} with ${response.status}`);
  console.log("  approved as the user (that URL with &approve=1, redirects followed)");
}
