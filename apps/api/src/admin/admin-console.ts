import type { ApiKey } from "@evergreen/config";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { createKeyLookup } from "../auth";
import { HttpError, isBackendUnavailable } from "../http-errors";
import { uuidInput } from "../route";
import { findAction, performAction, renderConfirmation } from "./actions";
import { ASSETS, type AssetName } from "./assets";
import { renderConnection } from "./connection-page";
import { renderConnections } from "./connections-page";
import { type ConsoleAccess, registerConsoleRoute, sessionOf } from "./console-route";
import type { ConsoleDeps } from "./deps";
import { html } from "./html";
import { renderIntegration, renderIntegrations } from "./integrations-page";
import { page, sendPage, setConsoleHeaders } from "./layout";
import { renderOverview } from "./overview-page";
import { csrfTokenMatches } from "./session";

export interface AdminConsoleOptions extends ConsoleDeps {
  readonly apiKeys: readonly ApiKey[];
  /**
   * Whether the session cookie is `Secure`: outside development, or whenever PUBLIC_URL is
   * https (main.ts decides). Browsers send a Secure cookie only over https (and to
   * localhost), so a plain-http development api would lose its session otherwise.
   */
  readonly secureCookie: boolean;
}

const COOKIE = "evergreen_admin";
/** Forms are a key or a token or two: anything bigger is not the console's. */
const FORM_LIMIT_BYTES = 8 * 1024;
/** Seconds between re-reads of live regions by the page script. */
const LIVE_SECONDS = 5;

const idParams = z.strictObject({ id: uuidInput });

/**
 * The admin console (issue 14): server-rendered pages under /admin, behind a cookie
 * session opened with an `admin` key. Registered in its own fastify scope so that its
 * form parser, error pages and headers apply to it alone. Design: docs/adr/0014.
 */
export function registerAdminConsole(app: FastifyInstance, options: AdminConsoleOptions): void {
  app.register(async (scope) => {
    const deps: ConsoleDeps = options;
    const findKey = createKeyLookup(options.apiKeys);

    scope.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: FORM_LIMIT_BYTES },
      (_request, body, done) =>
        done(null, Object.fromEntries(new URLSearchParams(body.toString()))),
    );
    scope.decorateRequest("adminSession", undefined);
    scope.addHook("onRequest", async (request, reply) => {
      setConsoleHeaders(reply);
      const access = request.routeOptions.config.console;
      if (access === undefined || access === "public") return;
      const session = await options.sessions.find(readCookie(request, COOKIE));
      if (!session) {
        if (request.method === "GET") return reply.redirect("/admin/login", 303);
        return sendPage(
          reply,
          401,
          page({
            title: "Signed out",
            body: html`<p>Your session has ended. <a href="/admin/login">Sign in</a> again.</p>`,
          }),
        );
      }
      request.adminSession = session;
      // The access log names the key a console request acted with, as it does for the API.
      request.apiKeyName = session.keyName;
    });
    // Bodies are parsed by now: every action checks the session's synchronizer token.
    scope.addHook("preHandler", async (request, reply) => {
      if (request.routeOptions.config.console !== "action") return;
      const presented = (request.body as Record<string, unknown> | undefined)?.csrf;
      if (!csrfTokenMatches(sessionOf(request), presented)) {
        return sendPage(
          reply,
          403,
          page({
            title: "Refused",
            session: request.adminSession,
            body: html`<p>This form's security token is missing or stale. Go back, reload the page and try again.</p>`,
          }),
        );
      }
    });
    scope.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
      const status =
        error instanceof HttpError
          ? error.statusCode
          : isBackendUnavailable(error)
            ? 503
            : (error.statusCode ?? 500);
      if (status >= 500) request.log.error({ err: error }, "admin console request failed");
      // Messages of our own errors and fastify's 4xx are safe to show; nothing else is.
      const message =
        status === 503
          ? "A backing service is unreachable; retry shortly."
          : status < 500
            ? error.message
            : "Internal error.";
      return sendPage(
        reply,
        status,
        page({
          title: `Error ${status}`,
          session: request.adminSession,
          body: html`<p>${message}</p>`,
        }),
      );
    });

    const route = (
      method: "GET" | "POST",
      url: string,
      access: ConsoleAccess,
      handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
    ) => registerConsoleRoute(scope, method, url, access, handler);

    route("GET", "/admin/assets/:name", "public", async (request, reply) => {
      const name = (request.params as { name: string }).name;
      if (!Object.hasOwn(ASSETS, name)) throw new HttpError(404, "not_found", "No such file.");
      const asset = ASSETS[name as AssetName];
      return reply
        .type(asset.contentType)
        .header("cache-control", "public, max-age=86400, immutable")
        .send(asset.body);
    });

    route("GET", "/admin/login", "public", async (_request, reply) =>
      sendPage(reply, 200, loginPage()),
    );

    route("POST", "/admin/login", "public", async (request, reply) => {
      const presented = (request.body as Record<string, unknown> | undefined)?.key;
      const key =
        typeof presented === "string" && presented !== ""
          ? findKey(`Bearer ${presented}`)
          : undefined;
      if (!key) {
        // Rate-limited per source address, like any rejected API key.
        request.server.audit.rejectedKey({
          ip: request.ip,
          route: "/admin/login",
          presented: typeof presented === "string" && presented !== "",
        });
        return sendPage(reply, 401, loginPage("That is not a configured API key."));
      }
      if (!key.scopes.includes("admin")) {
        request.server.audit.security({
          event: "admin_login_refused",
          keyName: key.name,
          ip: request.ip,
        });
        return sendPage(
          reply,
          403,
          loginPage(`The key ${key.name} lacks the admin scope; only admin keys may sign in.`),
        );
      }
      const session = await options.sessions.create(key);
      request.server.audit.security({ event: "admin_login", keyName: key.name, ip: request.ip });
      reply.header(
        "set-cookie",
        cookie(COOKIE, session.id, options.sessions.cookieMaxAgeSeconds, options.secureCookie),
      );
      return reply.redirect("/admin", 303);
    });

    route("POST", "/admin/logout", "action", async (request, reply) => {
      const session = sessionOf(request);
      await options.sessions.end(session.id);
      request.server.audit.security({
        event: "admin_logout",
        keyName: session.keyName,
        ip: request.ip,
      });
      reply.header("set-cookie", cookie(COOKIE, "", 0, options.secureCookie));
      return reply.redirect("/admin/login", 303);
    });

    route("GET", "/admin", "session", async (request, reply) =>
      sendPage(
        reply,
        200,
        page({
          title: "Overview",
          session: request.adminSession,
          section: "overview",
          body: await renderOverview(deps),
        }),
      ),
    );

    route("GET", "/admin/connections", "session", async (request, reply) =>
      sendPage(
        reply,
        200,
        page({
          title: "Connections",
          session: request.adminSession,
          section: "connections",
          body: await renderConnections(deps, request.query),
        }),
      ),
    );

    route("GET", "/admin/connections/:id", "session", async (request, reply) => {
      const id = connectionId(request);
      const result = (request.query as Record<string, unknown>).result;
      const found = await renderConnection(deps, id, result);
      if (!found) throw new HttpError(404, "not_found", "No connection with this id.");
      return sendPage(
        reply,
        200,
        page({
          title: found.title,
          session: request.adminSession,
          section: "connections",
          liveSeconds: LIVE_SECONDS,
          body: found.body,
        }),
      );
    });

    route("GET", "/admin/connections/:id/:action", "session", async (request, reply) => {
      const action = findAction((request.params as { action: string }).action);
      const id = connectionId(request);
      if (!action) throw new HttpError(404, "not_found", "No such action.");
      const connection = await deps.prisma.connection.findUnique({
        where: { id },
        select: { id: true, externalId: true, integration: { select: { key: true } } },
      });
      if (!connection) throw new HttpError(404, "not_found", "No connection with this id.");
      return sendPage(
        reply,
        200,
        page({
          title: `${action.label}?`,
          session: request.adminSession,
          section: "connections",
          body: renderConfirmation(action, connection, sessionOf(request)),
        }),
      );
    });

    route("POST", "/admin/connections/:id/:action", "action", async (request, reply) => {
      const action = findAction((request.params as { action: string }).action);
      const id = connectionId(request);
      if (!action) throw new HttpError(404, "not_found", "No such action.");
      const session = sessionOf(request);
      let outcome = "error";
      try {
        outcome = await performAction(deps, action.name, id);
      } finally {
        request.server.audit.security({
          event: "admin_action",
          keyName: session.keyName,
          ip: request.ip,
          action: action.name,
          connectionId: id,
          outcome,
        });
      }
      const target =
        outcome === "deleted" || outcome === "not_found"
          ? `/admin/connections?deleted=${outcome === "deleted" ? 1 : 0}`
          : `/admin/connections/${id}?result=${outcome}`;
      return reply.redirect(target, 303);
    });

    route("GET", "/admin/integrations", "session", async (request, reply) =>
      sendPage(
        reply,
        200,
        page({
          title: "Integrations",
          session: request.adminSession,
          section: "integrations",
          body: await renderIntegrations(deps),
        }),
      ),
    );

    route("GET", "/admin/integrations/:key", "session", async (request, reply) => {
      const key = (request.params as { key: string }).key;
      const found = await renderIntegration(deps, key);
      if (!found) throw new HttpError(404, "not_found", "No integration with this key.");
      return sendPage(
        reply,
        200,
        page({
          title: found.title,
          session: request.adminSession,
          section: "integrations",
          body: found.body,
        }),
      );
    });
  });
}

function connectionId(request: FastifyRequest): string {
  const parsed = idParams.safeParse({ id: (request.params as { id: string }).id });
  if (!parsed.success) throw new HttpError(404, "not_found", "No connection with this id.");
  return parsed.data.id;
}

function loginPage(problem?: string) {
  return page({
    title: "Sign in",
    body: html`<section class="card login">
${problem ? html`<p class="notice bad" role="alert">${problem}</p>` : ""}
<form method="post" action="/admin/login">
<label for="key">Admin API key<input id="key" name="key" type="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form>
<p class="muted">A key from API_KEYS with the <code>admin</code> scope (a bare key holds every scope). It is checked once; the session lasts an hour of inactivity, 12 hours at most.</p>
</section>`,
  });
}

function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie ?? "";
  for (const part of header.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

/** HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it). */
function cookie(name: string, value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${name}=${value}`,
    "Path=/admin",
    "HttpOnly",
    "SameSite=Strict",
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ["Secure"] : []),
  ].join("; ");
}
