import {
  ValidationFailedError,
  ValidationUnsupportedError,
  validateConnection,
} from "@evergreen/refresh";
import { HttpError } from "../http-errors";
import { deleteConnection } from "../routes/connections";
import type { ConsoleDeps } from "./deps";
import { type Html, html } from "./html";
import { csrfField } from "./layout";
import type { AdminSession } from "./session";

export type ActionName = "refresh" | "validate" | "delete";

interface Action {
  readonly name: ActionName;
  readonly label: string;
  /** What the confirmation page says will happen. */
  readonly consequence: string;
}

export const ACTIONS: readonly Action[] = [
  {
    name: "refresh",
    label: "Force refresh",
    consequence:
      "Evergreen asks the provider for a new access token now (joining a refresh already in flight). A provider that rotates refresh tokens issues a new one.",
  },
  {
    name: "validate",
    label: "Validate",
    consequence:
      "Evergreen asks the provider whether the stored access token is alive. A token the provider calls revoked makes the connection needs_reauth.",
  },
  {
    name: "delete",
    label: "Delete",
    consequence:
      "The connection and its tokens are erased, its refresh is cancelled, and the grant is revoked at the provider where it can be. The app must send the user through OAuth again. This cannot be undone.",
  },
];

export function findAction(name: unknown): Action | undefined {
  return ACTIONS.find((action) => action.name === name);
}

/**
 * What an action's outcome word means on the page it redirects to. Only these fixed
 * words travel in the URL (`?result=`), so nothing from outside is reflected.
 */
export const RESULT_MESSAGES: Readonly<Record<string, { text: string; bad?: boolean }>> = {
  refreshed: { text: "Refreshed: the provider issued a new access token." },
  needs_reauth: {
    text: "The provider refused the grant: the connection needs re-authorization.",
    bad: true,
  },
  integration_error: {
    text: "The provider refused the integration's client configuration; nothing was refreshed.",
    bad: true,
  },
  refresh_failed: {
    text: "The refresh failed; it is retried in the background. See the last error.",
    bad: true,
  },
  unavailable: {
    text: "The refresh could not run now (shutting down or rate-limited); try again shortly.",
    bad: true,
  },
  valid: { text: "Validated: the provider says the access token is alive." },
  invalid: {
    text: "The access token is not valid (expired); the next refresh renews it.",
    bad: true,
  },
  revoked: {
    text: "The provider says the grant was revoked: the connection needs re-authorization.",
    bad: true,
  },
  validation_unsupported: {
    text: "Neither the provider nor the integration offers a way to validate a token.",
    bad: true,
  },
  validation_failed: { text: "The provider gave no verdict; try again later.", bad: true },
  deleted: {
    text: "Deleted: the connection and its tokens are gone; the grant's revocation is queued.",
  },
  not_found: { text: "That connection no longer exists.", bad: true },
};

/** The confirmation step: a page with one POST form carrying the session's CSRF token. */
export function renderConfirmation(
  action: Action,
  connection: { id: string; externalId: string; integration: { key: string } },
  session: AdminSession,
): Html {
  return html`<section class="card"><p>${action.consequence}</p>
<dl class="facts"><dt>connection</dt><dd class="mono">${connection.externalId}</dd><dt>integration</dt><dd>${connection.integration.key}</dd><dt>id</dt><dd class="mono">${connection.id}</dd></dl>
<form method="post" action="/admin/connections/${connection.id}/${action.name}" class="actions">${csrfField(session)}
<button type="submit"${action.name === "delete" ? html` class="danger"` : ""}>Yes, ${action.label.toLowerCase()}</button>
<a class="button secondary" href="/admin/connections/${connection.id}">Cancel</a></form></section>`;
}

/**
 * Runs an action through the use case its API route calls (the same rules, single flight
 * and events) and answers its outcome as a fixed word, for the page and the audit stream.
 */
export async function performAction(
  deps: ConsoleDeps,
  action: ActionName,
  connectionId: string,
): Promise<string> {
  switch (action) {
    case "refresh":
      return deps.tokens.refresh(connectionId).then(
        () => "refreshed",
        (error: unknown) => {
          if (error instanceof HttpError && error.statusCode !== 500) {
            return error.statusCode === 404 ? "not_found" : error.code;
          }
          throw error;
        },
      );
    case "validate":
      return validateConnection({ ...deps.refresh, prisma: deps.prisma }, connectionId).then(
        (result) => {
          if (!result) return "not_found";
          if (result.revoked) return "revoked";
          return result.valid ? "valid" : "invalid";
        },
        (error: unknown) => {
          if (error instanceof ValidationUnsupportedError) return "validation_unsupported";
          if (error instanceof ValidationFailedError) return "validation_failed";
          throw error;
        },
      );
    case "delete":
      return (await deleteConnection(deps, connectionId, { revoke: true }))
        ? "deleted"
        : "not_found";
    default: {
      const unknown: never = action;
      throw new Error(`unknown action ${String(unknown)}`);
    }
  }
}
