import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { HttpError } from "../http-errors";
import { uuidInput } from "../route";
import { findAction, performAction, renderConfirmation } from "./actions";
import { renderConnection } from "./connection-page";
import { renderConnections } from "./connections-page";
import { registerConsoleRoute, sessionOf } from "./console-route";
import type { ConsoleDeps } from "./deps";
import type { Html } from "./html";
import { renderIntegration, renderIntegrations } from "./integrations-page";
import { page, type Section, sendPage } from "./layout";
import { renderOverview } from "./overview-page";

/** Seconds between re-reads of live regions by the page script. */
const LIVE_SECONDS = 5;

const idParams = z.strictObject({ id: uuidInput });

interface Rendered {
  readonly title: string;
  readonly body: Html;
  readonly live?: boolean;
}

/**
 * The console's pages and actions, each behind the session (admin-console.ts checks it,
 * and the CSRF token of every `action`).
 */
export function registerConsolePages(scope: FastifyInstance, deps: ConsoleDeps): void {
  /** A GET page in the console's frame; `render` answers undefined for a missing resource. */
  const pageRoute = (
    url: string,
    section: Section,
    render: (request: FastifyRequest) => Promise<Rendered | undefined>,
    missing = "No such page.",
  ) =>
    registerConsoleRoute(scope, "GET", url, "session", async (request, reply: FastifyReply) => {
      const rendered = await render(request);
      if (!rendered) throw new HttpError(404, "not_found", missing);
      return sendPage(
        reply,
        200,
        page({
          title: rendered.title,
          session: request.adminSession,
          section,
          ...(rendered.live ? { liveSeconds: LIVE_SECONDS } : {}),
          body: rendered.body,
        }),
      );
    });
  const NO_CONNECTION = "No connection with this id.";

  pageRoute("/admin", "overview", async () => ({
    title: "Overview",
    body: await renderOverview(deps),
    live: true,
  }));

  pageRoute("/admin/connections", "connections", async (request) => ({
    title: "Connections",
    body: await renderConnections(deps, request.query),
  }));

  pageRoute(
    "/admin/connections/:id",
    "connections",
    async (request) => {
      const result = (request.query as Record<string, unknown>).result;
      const found = await renderConnection(deps, connectionId(request), result);
      return found && { ...found, live: true };
    },
    NO_CONNECTION,
  );

  // The confirmation step: a page whose one form posts the action with the CSRF token.
  pageRoute(
    "/admin/connections/:id/:action",
    "connections",
    async (request) => {
      const action = findAction((request.params as { action: string }).action);
      if (!action) throw new HttpError(404, "not_found", "No such action.");
      const connection = await deps.prisma.connection.findUnique({
        where: { id: connectionId(request) },
        select: { id: true, externalId: true, integration: { select: { key: true } } },
      });
      if (!connection) return undefined;
      return {
        title: `${action.label}?`,
        body: renderConfirmation(action, connection, sessionOf(request)),
      };
    },
    NO_CONNECTION,
  );

  registerConsoleRoute(
    scope,
    "POST",
    "/admin/connections/:id/:action",
    "action",
    async (request, reply) => {
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
      // Only fixed outcome words travel in the URL: nothing from outside is reflected.
      const target =
        outcome === "deleted" || outcome === "not_found"
          ? `/admin/connections?deleted=${outcome === "deleted" ? 1 : 0}`
          : `/admin/connections/${id}?result=${outcome}`;
      return reply.redirect(target, 303);
    },
  );

  pageRoute("/admin/integrations", "integrations", async () => ({
    title: "Integrations",
    body: await renderIntegrations(deps),
  }));

  pageRoute(
    "/admin/integrations/:key",
    "integrations",
    (request) => renderIntegration(deps, (request.params as { key: string }).key),
    "No integration with this key.",
  );
}

function connectionId(request: FastifyRequest): string {
  const parsed = idParams.safeParse({ id: (request.params as { id: string }).id });
  if (!parsed.success) throw new HttpError(404, "not_found", "No connection with this id.");
  return parsed.data.id;
}
