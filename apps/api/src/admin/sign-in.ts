import { randomBytes } from "node:crypto";
import type { ApiKey } from "@evergreen/config";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createKeyLookup } from "../auth";
import { registerConsoleRoute, sessionOf } from "./console-route";
import { html } from "./html";
import { page, sendPage } from "./layout";
import { type AdminSessions, tokensMatch } from "./session";

export const SESSION_COOKIE = "evergreen_admin";
/**
 * The sign-in form's own CSRF token (double submit): in this cookie and in the form. A
 * page elsewhere cannot read it, and SameSite=Strict keeps the cookie off its posts, so no
 * other site can sign a browser in to the console under a key of its choosing.
 */
const SIGN_IN_COOKIE = "evergreen_admin_login";
const SIGN_IN_PATH = "/admin/login";

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

  /** The sign-in page with a fresh form token, in its cookie and its form. */
  const signInPage = (reply: FastifyReply, status: number, problem?: string) => {
    const token = randomBytes(32).toString("base64url");
    reply.header(
      "set-cookie",
      cookie(SIGN_IN_COOKIE, token, SIGN_IN_PATH, 600, options.secureCookie),
    );
    return sendPage(reply, status, renderSignIn(token, problem));
  };

  registerConsoleRoute(scope, "GET", SIGN_IN_PATH, "public", async (_request, reply) =>
    signInPage(reply, 200),
  );

  registerConsoleRoute(scope, "POST", SIGN_IN_PATH, "public", async (request, reply) => {
    const form = (request.body as Record<string, unknown> | undefined) ?? {};
    if (!tokensMatch(readCookie(request, SIGN_IN_COOKIE), form.csrf)) {
      return signInPage(reply, 403, "This form expired or came from elsewhere; sign in again.");
    }
    const presented = form.key;
    const given = typeof presented === "string" && presented !== "";
    const key = given ? findKey(`Bearer ${presented}`) : undefined;
    if (!key) {
      request.server.audit.rejectedKey({ ip: request.ip, route: SIGN_IN_PATH, presented: given });
      return signInPage(reply, 401, "That is not a configured API key.");
    }
    if (!key.scopes.includes("admin")) {
      request.server.audit.security({
        event: "admin_login_refused",
        keyName: key.name,
        ip: request.ip,
      });
      return signInPage(
        reply,
        403,
        `The key ${key.name} lacks the admin scope; only admin keys may sign in.`,
      );
    }
    const session = await options.sessions.create(key);
    request.server.audit.security({ event: "admin_login", keyName: key.name, ip: request.ip });
    reply.header("set-cookie", [
      cookie(
        SESSION_COOKIE,
        session.id,
        "/admin",
        options.sessions.cookieMaxAgeSeconds,
        options.secureCookie,
      ),
      cookie(SIGN_IN_COOKIE, "", SIGN_IN_PATH, 0, options.secureCookie),
    ]);
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
    reply.header("set-cookie", cookie(SESSION_COOKIE, "", "/admin", 0, options.secureCookie));
    return reply.redirect(SIGN_IN_PATH, 303);
  });
}

/** The session id a request's cookie carries, if any. */
export function sessionCookie(request: FastifyRequest): string | undefined {
  return readCookie(request, SESSION_COOKIE);
}

function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

/** HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it). */
function cookie(
  name: string,
  value: string,
  path: string,
  maxAgeSeconds: number,
  secure: boolean,
): string {
  return [
    `${name}=${value}`,
    `Path=${path}`,
    "HttpOnly",
    "SameSite=Strict",
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ["Secure"] : []),
  ].join("; ");
}

function renderSignIn(token: string, problem?: string) {
  return page({
    title: "Sign in",
    body: html`<section class="card login">
${problem ? html`<p class="notice bad" role="alert">${problem}</p>` : ""}
<form method="post" action="/admin/login"><input type="hidden" name="csrf" value="${token}">
<label for="key">Admin API key<input id="key" name="key" type="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form>
<p class="muted">A key from API_KEYS with the <code>admin</code> scope (a bare key holds every scope). It is checked once; the session lasts an hour of inactivity, 12 hours at most.</p>
</section>`,
  });
}
