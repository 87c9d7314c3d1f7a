import { ACTIONS, RESULT_MESSAGES } from "./actions";
import type { ConsoleDeps } from "./deps";
import { type Html, html } from "./html";
import { statusBadge, when } from "./layout";

const TIMELINE_LENGTH = 50;

/**
 * `GET /admin/connections/:id`: one connection's story. Read with a select that names
 * every column shown, so no token column is ever loaded here.
 */
export async function renderConnection(
  deps: ConsoleDeps,
  id: string,
  result: unknown,
): Promise<{ title: string; body: Html } | undefined> {
  const { prisma } = deps;
  const row = await prisma.connection.findUnique({
    where: { id },
    select: {
      id: true,
      externalId: true,
      status: true,
      expiresAt: true,
      nextRefreshAt: true,
      lastRefreshedAt: true,
      refreshTokenExpiresAt: true,
      refreshCount: true,
      consecutiveFailures: true,
      lastErrorCode: true,
      lastErrorMessage: true,
      lastErrorAt: true,
      lastValidatedAt: true,
      createdAt: true,
      integration: { select: { key: true, provider: true } },
    },
  });
  if (!row) return undefined;
  const [events, outcomes] = await Promise.all([
    // The [connectionId, id] index: newest first.
    prisma.connectionEvent.findMany({
      where: { connectionId: id },
      orderBy: { id: "desc" },
      take: TIMELINE_LENGTH,
    }),
    prisma.connectionEvent.groupBy({
      by: ["outcome"],
      where: { connectionId: id, outcome: { not: null } },
      _count: { _all: true },
    }),
  ]);
  const now = new Date();
  const message = typeof result === "string" ? RESULT_MESSAGES[result] : undefined;
  const body = html`${message ? html`<p class="notice${message.bad ? " bad" : ""}" role="status">${message.text}</p>` : ""}
<div class="grid">
<section class="card" id="facts" data-live-region aria-labelledby="h-state"><h2 id="h-state">State</h2>
<dl class="facts">
<dt>status</dt><dd>${statusBadge(row.status)}</dd>
<dt>integration</dt><dd><a href="/admin/integrations/${encodeURIComponent(row.integration.key)}">${row.integration.key}</a> <span class="muted">(${row.integration.provider})</span></dd>
<dt>external id</dt><dd class="mono">${row.externalId}</dd>
<dt>id</dt><dd class="mono">${row.id}</dd>
<dt>access token expires</dt><dd>${when(row.expiresAt, now)}</dd>
<dt>next refresh</dt><dd>${when(row.nextRefreshAt, now)}</dd>
<dt>last refreshed</dt><dd>${when(row.lastRefreshedAt, now)}</dd>
<dt>refresh token ends</dt><dd>${when(row.refreshTokenExpiresAt, now)}</dd>
<dt>last validated</dt><dd>${when(row.lastValidatedAt, now)}</dd>
<dt>created</dt><dd>${when(row.createdAt, now)}</dd>
</dl></section>
<section class="card" id="error" data-live-region aria-labelledby="h-error"><h2 id="h-error">Last error</h2>
${
  row.lastErrorCode
    ? html`<dl class="facts"><dt>code</dt><dd><code>${row.lastErrorCode}</code></dd><dt>message</dt><dd class="error-message">${row.lastErrorMessage ?? "—"}</dd><dt>at</dt><dd>${when(row.lastErrorAt, now)}</dd><dt>failures in a row</dt><dd>${row.consecutiveFailures}</dd></dl>`
    : html`<p>None.</p>`
}
<h2>Refresh counts</h2>
<dl class="facts"><dt>refreshes</dt><dd>${row.refreshCount}</dd>
${outcomes.map((entry) => html`<dt>${entry.outcome}</dt><dd>${entry._count._all} <span class="muted">(events kept)</span></dd>`)}
</dl></section>
</div>
<section class="card" aria-labelledby="h-actions"><h2 id="h-actions">Actions</h2>
<div class="actions">${ACTIONS.map(
    (action) =>
      html`<a class="button${action.name === "delete" ? " secondary" : ""}" href="/admin/connections/${row.id}/${action.name}">${action.label}…</a>`,
  )}</div>
<p class="muted">Each asks for confirmation first and is recorded in the audit stream under your key's name.</p></section>
<section class="card" id="timeline" data-live-region aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>
${
  events.length > 0
    ? html`<div class="scroll"><table><thead><tr><th scope="col">when</th><th scope="col">event</th><th scope="col">outcome</th><th scope="col">detail</th></tr></thead><tbody>${events.map(
        (event) =>
          html`<tr class="event event-${event.type}"><td>${when(event.createdAt, now)}</td><td>${event.type.replace("_", " ")}</td><td>${event.outcome ?? ""}</td><td>${event.errorCode ? html`<code>${event.errorCode}</code> ` : ""}${event.message ?? ""}</td></tr>`,
      )}</tbody></table></div>`
    : html`<p>No events kept for this connection.</p>`
}</section>`;
  return { title: `Connection ${row.externalId}`, body };
}
