import type { ApiKey } from "@evergreen/config";
import { isInfraOutage } from "@evergreen/refresh";
import type { FastifyInstance } from "fastify";
import { HttpError } from "../http-errors";
import { ASSETS, type AssetName } from "./assets";
import { registerConsolePages } from "./console-pages";
import { registerConsoleRoute, sessionOf } from "./console-route";
import type { ConsoleDeps } from "./deps";
import { html } from "./html";
import { page, sendPage, setConsoleHeaders } from "./layout";
import { csrfTokenMatches } from "./session";
import { registerSignIn, sessionCookie, sessionCookieHeader } from "./sign-in";

export interface AdminConsoleOptions extends ConsoleDeps {
  readonly apiKeys: readonly ApiKey[];
  /**
   * Whether the session cookie is `Secure`: in production, or whenever PUBLIC_URL is https
   * (main.ts decides). Browsers keep a Secure cookie only from https (or localhost), so a
   * plain-http development api would lose its session otherwise.
   */
  readonly secureCookie: boolean;
}

/** The methods the console's 404 page answers (HEAD comes with GET). */
const CONSOLE_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** Forms are a key or a token or two: anything bigger is not the console's. */
const FORM_LIMIT_BYTES = 8 * 1024;

/**
 * The admin console (issue 14): server-rendered pages under /admin, behind a cookie
 * session opened with an `admin` key. Registered in its own fastify scope so that its
 * form parser, session check, error pages and headers apply to it alone. Design:
 * docs/adr/0021.
 */
export function registerAdminConsole(app: FastifyInstance, options: AdminConsoleOptions): void {
  app.register(async (scope) => {
    // Forms only: the API's JSON parser (1 MiB, walked for poisoned keys) is no business of
    // the console's public sign-in form.
    scope.removeContentTypeParser("application/json");
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
      const session = await options.sessions.find(sessionCookie(request));
      if (!session) {
        // HEAD too: it is a GET without the body, not an action.
        if (request.method === "GET" || request.method === "HEAD") {
          return reply.redirect("/admin/login", 303);
        }
        return sendPage(
          reply,
          401,
          page({
            title: "Signed out",
            body: html`<p>Your session has ended. <a href="/admin/login">Sign in</a> again.</p>`,
          }),
        );
      }
      // Renewed with the session's idle timer: the cookie's Max-Age is the idle limit.
      reply.header("set-cookie", sessionCookieHeader(session.id, options));
      request.adminSession = session;
      // The access log names the key a console request acted with, as it does for the API.
      request.apiKeyName = session.keyName;
    });

    // Bodies are parsed by now: every action checks the session's synchronizer token.
    scope.addHook("preHandler", async (request, reply) => {
      if (request.routeOptions.config.console !== "action") return;
      const presented = (request.body as Record<string, unknown> | undefined)?.csrf;
      if (csrfTokenMatches(sessionOf(request), presented)) return;
      return sendPage(
        reply,
        403,
        page({
          title: "Refused",
          session: request.adminSession,
          body: html`<p>This form's security token is missing or stale. Go back, reload the page and try again.</p>`,
        }),
      );
    });

    scope.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
      const status =
        error instanceof HttpError
          ? error.statusCode
          : isInfraOutage(error)
            ? 503
            : (error.statusCode ?? 500);
      if (status >= 500) request.log.error({ err: error }, "admin console request failed");
      // As the API's 503: the outage is expected to pass.
      if (status === 503) reply.header("retry-after", "5");
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

    registerConsoleRoute(scope, "GET", "/admin/assets/:name", "public", async (request, reply) => {
      const name = (request.params as { name: string }).name;
      if (!Object.hasOwn(ASSETS, name)) throw new HttpError(404, "not_found", "No such file.");
      const asset = ASSETS[name as AssetName];
      // Versioned URLs (assetUrl): a new build is a new URL, so caching long is safe.
      return reply
        .type(asset.contentType)
        .header("cache-control", "public, max-age=86400, immutable")
        .send(asset.body);
    });
    registerSignIn(scope, options);
    registerConsolePages(scope, options);
    // Any other path under /admin (a mistyped page, an id past the router's 100 characters):
    // the console's 404 page under its headers, not the API's bare JSON without them.
    registerConsoleRoute(scope, [...CONSOLE_METHODS], "/admin/*", "public", async () => {
      throw new HttpError(404, "not_found", "No such page.");
    });
  });
}
