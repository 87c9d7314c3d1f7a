import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AdminSession } from "./session";

/**
 * Who may reach a console route: anyone (sign-in page, assets), a signed-in session, or a
 * signed-in session with the form's CSRF token (every POST that changes something).
 */
export type ConsoleAccess = "public" | "session" | "action";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * Set on /admin routes only (registerConsoleRoute): HTML pages behind a cookie session
     * rather than the API's bearer keys, and outside the OpenAPI document. The console's
     * own hooks (admin-console.ts) check the session and the CSRF token.
     */
    console?: ConsoleAccess;
  }
  interface FastifyRequest {
    /** The console session, on routes that need one, once checked. */
    adminSession: AdminSession | undefined;
  }
}

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * An /admin route: served and counted in the HTTP metrics under its template like any
 * route, but neither declared for the document (route.ts) nor keyed by bearer scope.
 */
export function registerConsoleRoute(
  app: FastifyInstance,
  method: "GET" | "POST",
  url: string,
  access: ConsoleAccess,
  handler: Handler,
): void {
  app.route({ method, url, config: { console: access }, handler });
}

/** The session of a route that requires one (its hook has checked it). */
export function sessionOf(request: FastifyRequest): AdminSession {
  const session = request.adminSession;
  if (!session) throw new Error(`${request.routeOptions.url} reached without a session`);
  return session;
}
