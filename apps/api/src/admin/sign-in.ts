import type { ApiKey } from "@evergreen/config";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { createKeyLookup } from "../auth";
import { registerConsoleRoute, sessionOf } from "./console-route";
import { html } from "./html";
import { page, sendPage } from "./layout";
import type { AdminSessions } from "./session";

export const SESSION_COOKIE = "evergreen_admin";

export interface SignInOptions {
  readonly apiKeys: readonly ApiKey[];
  readonly sessions: AdminSessions;
  /** Whether the session cookie is `Secure` (see AdminConsoleOptions). */
  readonly secureCookie: boolean;
}

/**
 * Sign-in with an `admin` key, entered once, and sign-out. Every attempt lands in the
 * audit stream: an unknown key as a rejected API key (rate-limited per source address),
 * a known key without `admin` by its name.
 */
export function registerSignIn(scope: FastifyInstance, options: SignInOptions): void {
  const findKey = createKeyLookup(options.apiKeys);

  registerConsoleRoute(scope, "GET", "/admin/login", "public", async (_request, reply) =>
    sendPage(reply, 200, signInPage()),
  );

  registerConsoleRoute(scope, "POST", "/admin/login", "public", async (request, reply) => {
    const presented = (request.body as Record<string, unknown> | undefined)?.key;
    const given = typeof presented === "string" && presented !== "";
    const key = given ? findKey(`Bearer ${presented}`) : undefined;
    if (!key) {
      request.server.audit.rejectedKey({ ip: request.ip, route: "/admin/login", presented: given });
      return sendPage(reply, 401, signInPage("That is not a configured API key."));
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
        signInPage(`The key ${key.name} lacks the admin scope; only admin keys may sign in.`),
      );
    }
    const session = await options.sessions.create(key);
    request.server.audit.security({ event: "admin_login", keyName: key.name, ip: request.ip });
    reply.header(
      "set-cookie",
      cookie(session.id, options.sessions.cookieMaxAgeSeconds, options.secureCookie),
    );
    return reply.redirect("/admin", 303);
  });

  registerConsoleRoute(scope, "POST", "/admin/logout", "action", async (request, reply) => {
    const session = sessionOf(request);
    await options.sessions.end(session.id);
    request.server.audit.security({
      event: "admin_logout",
      keyName: session.keyName,
      ip: request.ip,
    });
    reply.header("set-cookie", cookie("", 0, options.secureCookie));
    return reply.redirect("/admin/login", 303);
  });
}

/** The session id a request's cookie carries, if any. */
export function sessionCookie(request: FastifyRequest): string | undefined {
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === SESSION_COOKIE) return value.join("=");
  }
  return undefined;
}

/** HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it). */
function cookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    "Path=/admin",
    "HttpOnly",
    "SameSite=Strict",
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ["Secure"] : []),
  ].join("; ");
}

function signInPage(problem?: string) {
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
