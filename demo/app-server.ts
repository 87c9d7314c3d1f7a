// The app side of the demo: one HTTP server on 127.0.0.1 serving the page the connect flow
// sends users back to, and the webhook endpoint Evergreen delivers events to.

import { once } from "node:events";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { verifyWebhook, WebhookVerificationError } from "@evergreen/client";

/** Distinctive paths, so that a later run can recognise an earlier run's webhook endpoint. */
const RETURN_PATH = "/evergreen-demo/connected";
export const WEBHOOK_PATH = "/evergreen-demo/webhooks";
/** Evergreen's events are a few hundred bytes; anything far larger is not one of them. */
const MAX_BODY_BYTES = 65_536;

export interface WebhookEvent {
  type: string;
  timestamp: string;
  data: {
    connectionId: string;
    integration: string;
    externalId: string;
    status: string;
    error: { code: string; message: string | null } | null;
  };
}

/** Where the connect flow left the user: the query Evergreen's callback redirected with. */
export type ConnectReturn = { connectionId: string } | { error: string };

export interface DemoAppOptions {
  /**
   * The app's integration. The webhook endpoint hears every integration's events; those of
   * others (the same Evergreen serving other apps) are acknowledged and ignored.
   */
  readonly integration: string;
  /** Called once per verified event; redeliveries of a `webhook-id` already seen are not. */
  onEvent(event: WebhookEvent): void;
  /** Called for each request that failed verification. */
  onRejected(problem: string): void;
}

export class DemoApp {
  /** Verified events, in arrival order. */
  readonly events: WebhookEvent[] = [];
  rejected = 0;

  readonly #options: DemoAppOptions;
  readonly #server = createServer((request, response) => {
    this.#handle(request).then(
      ({ status, html }) =>
        response
          .writeHead(status, html === undefined ? {} : { "content-type": "text/html" })
          .end(html),
      () => response.writeHead(500).end(),
    );
  });
  #secret: string | null = null;
  #origin = "";
  readonly #returns = new Map<string, (result: ConnectReturn) => void>();
  readonly #seenIds = new Set<string>();
  readonly #eventWaiters = new Set<() => void>();

  constructor(options: DemoAppOptions) {
    this.#options = options;
  }

  async listen(): Promise<void> {
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
    this.#origin = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The integration's `returnUrls` entry: every return URL below is under it. */
  get returnUrlBase(): string {
    return `${this.#origin}${RETURN_PATH}`;
  }

  get webhookUrl(): string {
    return `${this.#origin}${WEBHOOK_PATH}`;
  }

  /** A session's return URL: its own query says whose browser comes back. */
  returnUrl(externalId: string): string {
    return `${this.returnUrlBase}?${new URLSearchParams({ user: externalId })}`;
  }

  /** The endpoint's secret, known once the endpoint is registered; until then all is refused. */
  trustWebhookSecret(secret: string): void {
    this.#secret = secret;
  }

  /** Resolves when `externalId`'s browser comes back from the connect flow. */
  expectReturn(externalId: string, signal: AbortSignal): Promise<ConnectReturn> {
    return new Promise((resolve, reject) => {
      const abort = () => {
        this.#returns.delete(externalId);
        reject(signal.reason);
      };
      if (signal.aborted) return abort();
      signal.addEventListener("abort", abort, { once: true });
      this.#returns.set(externalId, (result) => {
        signal.removeEventListener("abort", abort);
        resolve(result);
      });
    });
  }

  /** Resolves true once `done(events)` holds, false if `timeoutMs` passes first. */
  waitForEvents(done: (events: readonly WebhookEvent[]) => boolean, timeoutMs: number) {
    return new Promise<boolean>((resolve) => {
      const check = () => {
        if (!done(this.events)) return;
        clearTimeout(timer);
        this.#eventWaiters.delete(check);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#eventWaiters.delete(check);
        resolve(false);
      }, timeoutMs);
      this.#eventWaiters.add(check);
      check();
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(request: IncomingMessage): Promise<{ status: number; html?: string }> {
    const url = new URL(request.url ?? "/", this.#origin);
    if (request.method === "GET" && url.pathname === RETURN_PATH) return this.#returned(url);
    if (request.method === "POST" && url.pathname === WEBHOOK_PATH) return this.#webhook(request);
    return { status: 404 };
  }

  #returned(url: URL): { status: number; html: string } {
    const user = url.searchParams.get("user") ?? "";
    const connectionId = url.searchParams.get("connectionId");
    const result: ConnectReturn =
      connectionId !== null && url.searchParams.get("status") === "success"
        ? { connectionId }
        : { error: url.searchParams.get("error") ?? "no_result" };
    const finish = this.#returns.get(user);
    this.#returns.delete(user);
    finish?.(result);
    const text =
      "connectionId" in result
        ? `${user} is connected. You can close this tab.`
        : `${user} came back with error=${result.error}; the demo prints a new link.`;
    return {
      status: 200,
      html: `<!doctype html><title>Evergreen demo</title><p>${escapeHtml(text)}`,
    };
  }

  async #webhook(request: IncomingMessage): Promise<{ status: number }> {
    const body = await readBody(request);
    if (body === null) return this.#reject("body over 64 KiB");
    // Verify the raw bytes before trusting anything in them.
    if (this.#secret === null) return this.#reject("no endpoint secret yet");
    try {
      verifyWebhook(request.headers, body, this.#secret);
    } catch (error) {
      if (error instanceof WebhookVerificationError) return this.#reject(error.message);
      throw error;
    }
    // The id is stable across retries: a redelivery (after a lost 2xx) is acknowledged again.
    const id = String(request.headers["webhook-id"]);
    if (this.#seenIds.has(id)) return { status: 204 };
    this.#seenIds.add(id);
    const event = JSON.parse(body) as WebhookEvent;
    if (event.data?.integration !== this.#options.integration) return { status: 204 };
    this.events.push(event);
    this.#options.onEvent(event);
    for (const check of [...this.#eventWaiters]) check();
    return { status: 204 };
  }

  #reject(problem: string): { status: number } {
    this.rejected += 1;
    this.#options.onRejected(problem);
    return { status: 401 };
  }
}

async function readBody(request: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
