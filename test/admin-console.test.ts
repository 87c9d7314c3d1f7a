import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { enqueueRefresh, QUEUE_PREFIX, refreshConnection } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { type Browser, chromium, type Page, type Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, listeningPort, startApp } from "./support/app-process";

// The apps use the production queue and lock prefix, so this file owns a Redis database.
const REDIS_URL = redisDatabaseUrl(4);
const ADMIN_KEY = "console-admin-key-0123456789";
const READER_KEY = "console-reader-key-0123456789";
/** Where screenshots go (git-ignored); small copies are committed under docs/. */
const ARTIFACTS = fileURLToPath(new URL("artifacts/", import.meta.url));
const XSS = `<img src=x onerror=alert(1)><script>alert(2)</script>`;

let h: RefreshHarness;
let browser: Browser;
let base: string;
const apps: AppProcess[] = [];
/** Every dialog any page opened: an executed payload would show up here. */
const dialogs: string[] = [];

beforeAll(async () => {
  // Failed refreshes back off for minutes: the failing connection stays failing until the
  // console forces its refresh.
  h = await createRefreshHarness({
    redisUrl: REDIS_URL,
    prefix: QUEUE_PREFIX,
    retryBaseDelayMs: 600_000,
  });
  await h.redis.flushdb();
  const env = {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: h.encryptionKeys,
    ALLOW_INSECURE_TOKEN_URLS: "true",
    RETRY_BASE_DELAY_MS: "600000",
    RETRY_MAX_DELAY_MS: "600000",
    LOG_LEVEL: "info",
  };
  const api = startApp("api", {
    ...env,
    API_KEYS: `admin:${ADMIN_KEY}:admin,reader:${READER_KEY}:tokens:read`,
    PORT: "0",
  });
  const worker = startApp("worker", { ...env, METRICS_PORT: "0" });
  apps.push(api, worker);
  mkdirSync(ARTIFACTS, { recursive: true });
  const [port] = await Promise.all([
    listeningPort(api),
    worker.waitForLog((line) => line.msg === "ops server listening"),
  ]);
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  for (const app of apps) {
    app.child.kill("SIGTERM");
    await app.exited;
  }
  await h?.redis.flushdb();
  await h?.close();
});

async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  return page;
}

async function signIn(page: Page, key: string) {
  await page.goto(`${base}/admin`);
  // Without a session every page leads to sign-in.
  expect(new URL(page.url()).pathname).toBe("/admin/login");
  await page.getByLabel("Admin API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The timeline's event words, newest first. */
const timeline = (page: Page) =>
  page.locator("#timeline tbody tr td:nth-child(2)").allTextContents();

describe("admin console in a real browser", () => {
  it("signs in, filters, opens a failing connection, refreshes it and deletes it", async () => {
    const healthy = await Promise.all(Array.from({ length: 3 }, () => h.addConnection()));
    const failing = await h.addConnection();
    await h.prisma.connection.update({
      where: { id: failing.connection.id },
      data: { externalId: XSS },
    });
    // A real failed refresh: the provider's error description carries the payload.
    h.provider.failNext(
      1,
      { status: 503, error: "temporarily_unavailable", errorDescription: `upstream ${XSS}` },
      { grantId: failing.grant.grantId },
    );
    const run = await refreshConnection(h.deps, {
      connectionId: failing.connection.id,
      expectedVersion: 0,
      source: "api",
    });
    expect(run).toMatchObject({ kind: "done", outcome: "transient" });

    const page = await newPage();
    // A tokens:read key is refused.
    await signIn(page, READER_KEY);
    await expect(page.getByRole("alert").textContent()).resolves.toContain("lacks the admin scope");
    // With the keyboard only: the field has the focus, Enter submits.
    await page.getByLabel("Admin API key").focus();
    await page.keyboard.type(ADMIN_KEY);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${base}/admin`);
    await expect(page.locator("h1").textContent()).resolves.toBe("Overview");
    // The counts fill in once taken (at once here; a large fleet's first count takes longer).
    await page.locator("#summary", { hasText: "total4" }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: `${ARTIFACTS}admin-overview.png`, fullPage: true });
    // On a phone: one column, nothing wider than the screen (tables scroll in their box).
    await page.setViewportSize({ width: 390, height: 844 });
    // A string: this file is typed for Node, without the DOM's names.
    await expect(
      page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"),
    ).resolves.toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}admin-overview-phone.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // Filter by status and integration, then find the payload by its exact external id.
    await page.getByRole("link", { name: "Connections" }).click();
    await expect(page.locator("tbody tr").count()).resolves.toBe(4);
    await page.getByLabel("External id (exact)").fill(XSS);
    await page.getByLabel("Integration").selectOption("mock");
    await page.getByLabel("Status").selectOption("active");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect(page.locator("tbody tr").count()).resolves.toBe(1);

    // The failing connection: its external id and the provider's message shown as text.
    await page.getByRole("link", { name: XSS }).click();
    await page.waitForURL(`${base}/admin/connections/${failing.connection.id}`);
    await expect(page.locator(".error-message").textContent()).resolves.toBe(`upstream ${XSS}`);
    await expect(page.locator("h1").textContent()).resolves.toBe(`Connection ${XSS}`);
    await expect(page.locator("img").count()).resolves.toBe(0);
    await expect(page.locator("script:not([src])").count()).resolves.toBe(0);
    expect(await timeline(page)).toEqual(["refresh failed"]);
    await page.screenshot({ path: `${ARTIFACTS}admin-connection.png`, fullPage: true });

    // Force a refresh: confirm, then the timeline shows it.
    await page.getByRole("link", { name: "Force refresh…" }).click();
    await page.getByRole("button", { name: "Yes, force refresh" }).click();
    await page.waitForURL(/result=refreshed$/);
    await expect(page.getByRole("status").textContent()).resolves.toContain("Refreshed");
    expect(await timeline(page)).toEqual(["refreshed", "refresh failed"]);
    expect(h.provider.grant(failing.grant.grantId)?.refreshes).toBe(1);

    // Delete: the confirmation's cancel changes nothing; its button deletes.
    await page.getByRole("link", { name: "Delete…" }).click();
    await page.getByRole("link", { name: "Cancel" }).click();
    expect(await h.prisma.connection.count({ where: { id: failing.connection.id } })).toBe(1);
    await page.getByRole("link", { name: "Delete…" }).click();
    await page.getByRole("button", { name: "Yes, delete" }).click();
    await page.waitForURL(`${base}/admin/connections?deleted=1`);
    await expect(page.getByRole("status").textContent()).resolves.toContain("Deleted");
    expect(await h.prisma.connection.count({ where: { id: failing.connection.id } })).toBe(0);
    await expect(page.locator("tbody tr").count()).resolves.toBe(healthy.length);

    expect(dialogs).toEqual([]);
    await page.close();
  });

  it("shows a worker's refresh on an open connection page without a reload", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 3600 });
    const page = await newPage();
    await signIn(page, ADMIN_KEY);
    await page.goto(`${base}/admin/connections/${connection.id}`);
    expect(await timeline(page)).toEqual([]);
    await enqueueRefresh(h.queues, { connectionId: connection.id, version: 0 }, new Date());
    // The page script re-reads the timeline every few seconds; no navigation happens.
    await page.locator("#timeline tbody tr").first().waitFor({ timeout: 20_000 });
    expect(await timeline(page)).toEqual(["refreshed"]);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it("keeps one re-read in flight on a live page while the api is slow to answer", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 3600 });
    const page = await newPage();
    await signIn(page, ADMIN_KEY);
    await page.clock.install();
    await page.goto(`${base}/admin/connections/${connection.id}`);
    // The api never answers the page's re-reads (a database that stopped answering).
    const held: Route[] = [];
    await page.route(`${base}/admin/connections/${connection.id}`, (route) =>
      route.request().resourceType() === "fetch" ? held.push(route) : route.continue(),
    );
    const first = page.waitForRequest((request) => request.resourceType() === "fetch");
    await page.clock.runFor(5_000);
    await first;
    // Six periods more: a new request every period would make seven.
    await page.clock.runFor(30_000);
    await page.evaluate(() => fetch("/admin/assets/console.css"));
    expect(held).toHaveLength(1);
    await page.unrouteAll({ behavior: "ignoreErrors" });
    await page.close();
  });

  it("turns a live page into the sign-in form once its session has ended", async () => {
    const page = await newPage();
    await signIn(page, ADMIN_KEY);
    await page.clock.install();
    await page.goto(`${base}/admin`);
    // Signed out elsewhere (another tab, an operator ending every session).
    for (const key of await h.redis.keys("evergreen:admin:session:*")) await h.redis.del(key);
    const signedOut = page.waitForURL(`${base}/admin/login`);
    await page.clock.runFor(5_000);
    await signedOut;
    expect(await page.getByLabel("Admin API key").count()).toBe(1);
    await page.close();
  });
});
