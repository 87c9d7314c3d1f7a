import { randomUUID } from "node:crypto";
import { generateWebhookSecret, signWebhook } from "@evergreen/webhooks";
import { afterEach, describe, expect, it } from "vitest";
import { DemoApp, type WebhookEvent } from "../demo/app-server";

const apps: DemoApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function demoApp(received: WebhookEvent[]): Promise<{ app: DemoApp; secret: string }> {
  const app = new DemoApp({
    integration: "demo",
    onEvent: (event) => received.push(event),
    onRejected: () => {},
  });
  apps.push(app);
  await app.listen();
  const secret = generateWebhookSecret();
  app.trustWebhookSecret(secret);
  return { app, secret };
}

/** Posts `event` to the app's webhook endpoint as Evergreen signs it. */
async function deliver(app: DemoApp, secret: string, event: WebhookEvent): Promise<number> {
  const body = JSON.stringify(event);
  const response = await fetch(app.webhookUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...signWebhook([secret], `msg_${randomUUID()}`, new Date(), body),
    },
    body,
  });
  return response.status;
}

const needsReauth = (integration: string): WebhookEvent => ({
  type: "connection.needs_reauth",
  timestamp: new Date().toISOString(),
  data: {
    connectionId: randomUUID(),
    integration,
    externalId: "user-1",
    status: "needs_reauth",
    error: { code: "invalid_grant", message: null },
  },
});

describe("the demo app", () => {
  it("acts on its own integration's events and acknowledges, without acting on, any other's", async () => {
    const received: WebhookEvent[] = [];
    const { app, secret } = await demoApp(received);
    expect(await deliver(app, secret, needsReauth("another-app"))).toBe(204);
    expect(await deliver(app, secret, needsReauth("demo"))).toBe(204);
    expect(received.map(({ data }) => data.integration)).toEqual(["demo"]);
    expect(app.events).toHaveLength(1);
  });
});
