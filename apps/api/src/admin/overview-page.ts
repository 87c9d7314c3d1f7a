import type { ConnectionStatus } from "@evergreen/db";
import { OVERDUE_GRACE_SECONDS } from "@evergreen/refresh";
import type { ConsoleDeps } from "./deps";
import { countsNote, type IntegrationCounts, STATUSES } from "./fleet-stats";
import { type Html, html } from "./html";
import { statusBadge, when } from "./layout";

/** `GET /admin`: the fleet at a glance (issue 14). */
export async function renderOverview(deps: ConsoleDeps): Promise<Html> {
  const { prisma } = deps;
  const now = new Date();
  const [fleet, integrations, oldestOverdue, expiring] = await Promise.all([
    deps.fleet.read(),
    prisma.integration.findMany({
      select: { id: true, key: true, provider: true },
      orderBy: { key: "asc" },
    }),
    // Live, from the [status, nextRefreshAt] index: the few most overdue.
    firstPerStatus(
      5,
      (status) =>
        prisma.connection.findMany({
          where: {
            status,
            nextRefreshAt: { lt: new Date(now.getTime() - OVERDUE_GRACE_SECONDS * 1000) },
          },
          orderBy: { nextRefreshAt: "asc" },
          take: 5,
          include: { integration: { select: { key: true } } },
        }),
      (row) => row.nextRefreshAt,
    ),
    // Live, from the [status, refreshTokenExpiresAt] index.
    firstPerStatus(
      10,
      (status) =>
        prisma.connection.findMany({
          where: { status, refreshTokenExpiresAt: { not: null } },
          orderBy: { refreshTokenExpiresAt: "asc" },
          take: 10,
          include: { integration: { select: { key: true } } },
        }),
      (row) => row.refreshTokenExpiresAt,
    ),
  ]);
  const cooling = await Promise.all(
    integrations.map(async (integration) => ({
      integration,
      remainingMs: await deps.refresh.cooldown.remainingMs(integration.id),
    })),
  );
  const counted = [...(fleet?.byIntegration.values() ?? [])];
  const countsOf = (id: string) => fleet?.byIntegration.get(id);
  const totals = sumStatuses(counted);
  const overdueTotal = sum(counted.map((counts) => counts.overdue));
  const oldestOverdueSeconds = Math.max(0, ...counted.map((counts) => counts.oldestOverdueSeconds));

  const byProvider = new Map<string, Record<string, number>>();
  for (const { id, provider } of integrations) {
    const refreshes = countsOf(id)?.refreshes ?? {};
    const into = byProvider.get(provider) ?? {};
    for (const [outcome, count] of Object.entries(refreshes)) {
      into[outcome] = (into[outcome] ?? 0) + count;
    }
    byProvider.set(provider, into);
  }

  return html`${countsNote(fleet, now)}
<div class="grid" id="summary" data-live-region>
<section class="card" aria-labelledby="h-status"><h2 id="h-status">Connections</h2>
<dl class="facts"><dt>total</dt><dd>${sum(Object.values(totals))}</dd>
${STATUSES.map((status) => html`<dt>${statusBadge(status)}</dt><dd><a href="/admin/connections?status=${status}">${totals[status]}</a></dd>`)}
</dl></section>
<section class="card" aria-labelledby="h-overdue"><h2 id="h-overdue">Overdue refreshes</h2>
<dl class="facts"><dt>overdue</dt><dd>${overdueTotal}</dd><dt>oldest</dt><dd>${oldestOverdueSeconds > 0 ? `${Math.round(oldestOverdueSeconds)} s past due` : "none"}</dd></dl>
${
  oldestOverdue.length > 0
    ? html`<ul>${oldestOverdue.map((row) => html`<li><a href="/admin/connections/${row.id}">${row.externalId}</a> <span class="muted">${row.integration.key}</span> due ${when(row.nextRefreshAt, now)}</li>`)}</ul>`
    : ""
}
<p class="muted">Overdue: more than ${OVERDUE_GRACE_SECONDS} s past the planned refresh.</p></section>
<section class="card" aria-labelledby="h-cooling"><h2 id="h-cooling">Integrations cooling down</h2>
${
  cooling.some(({ remainingMs }) => remainingMs > 0)
    ? html`<ul>${cooling
        .filter(({ remainingMs }) => remainingMs > 0)
        .map(
          ({ integration, remainingMs }) =>
            html`<li><a href="/admin/integrations/${encodeURIComponent(integration.key)}">${integration.key}</a>: ${Math.ceil(remainingMs / 1000)} s left (the provider answered 429)</li>`,
        )}</ul>`
    : html`<p>None: no provider is rate-limiting us.</p>`
}</section>
</div>

<section class="card" id="by-integration" data-live-region aria-labelledby="h-integrations"><h2 id="h-integrations">By integration and status</h2>
<div class="scroll"><table><thead><tr><th scope="col">integration</th><th scope="col">provider</th>${STATUSES.map((status) => html`<th scope="col" class="num">${status}</th>`)}<th scope="col" class="num">overdue</th></tr></thead>
<tbody>${integrations.map(({ id, key, provider }) => {
    const counts = countsOf(id);
    return html`<tr><th scope="row"><a href="/admin/integrations/${encodeURIComponent(key)}">${key}</a></th><td>${provider}</td>${STATUSES.map(
      (status) =>
        html`<td class="num"><a href="/admin/connections?integration=${encodeURIComponent(key)}&amp;status=${status}">${counts?.byStatus[status] ?? 0}</a></td>`,
    )}<td class="num">${counts?.overdue ?? 0}</td></tr>`;
  })}</tbody></table></div></section>

<section class="card" id="refreshes" data-live-region aria-labelledby="h-refreshes"><h2 id="h-refreshes">Refreshes in the last hour</h2>
<div class="scroll"><table><thead><tr><th scope="col">provider</th><th scope="col" class="num">refreshes</th><th scope="col" class="num">succeeded</th><th scope="col" class="num">success ratio</th><th scope="col">failures by outcome</th></tr></thead>
<tbody>${[...byProvider].map(([provider, outcomes]) => {
    const total = sum(Object.values(outcomes));
    const succeeded = outcomes.success ?? 0;
    const failures = Object.entries(outcomes).filter(([outcome]) => outcome !== "success");
    return html`<tr><th scope="row">${provider}</th><td class="num">${total}</td><td class="num">${succeeded}</td><td class="num">${total > 0 ? `${((succeeded / total) * 100).toFixed(1)} %` : "—"}</td><td>${failures.map(([outcome, count]) => `${outcome}: ${count}`).join(", ") || "—"}</td></tr>`;
  })}</tbody></table></div></section>

<section class="card" id="expiring" data-live-region aria-labelledby="h-expiring"><h2 id="h-expiring">Soonest refresh-token expiries</h2>
${
  expiring.length > 0
    ? html`<div class="scroll"><table><thead><tr><th scope="col">connection</th><th scope="col">integration</th><th scope="col">refresh token ends</th></tr></thead><tbody>${expiring.map(
        (row) =>
          html`<tr><td><a href="/admin/connections/${row.id}">${row.externalId}</a></td><td>${row.integration.key}</td><td>${when(row.refreshTokenExpiresAt, now)}</td></tr>`,
      )}</tbody></table></div>`
    : html`<p>No connection has a refresh token with a stated end.</p>`
}</section>`;
}

/** The statuses whose connections are still refreshed. */
const REFRESHING: readonly ConnectionStatus[] = ["active", "expired"];

/**
 * The `take` rows of refreshed connections that come first by `key`, from one query per
 * status: `status IN (a, b) ORDER BY x LIMIT n` sorts every match (123 ms over 50,000
 * rows at a million connections), one index range per status reads n rows (0.05 ms).
 */
async function firstPerStatus<Row>(
  take: number,
  query: (status: ConnectionStatus) => Promise<Row[]>,
  key: (row: Row) => Date | null,
): Promise<Row[]> {
  const rows = (await Promise.all(REFRESHING.map(query))).flat();
  const time = (row: Row) => key(row)?.getTime() ?? Number.POSITIVE_INFINITY;
  return rows.sort((a, b) => time(a) - time(b)).slice(0, take);
}

export function sumStatuses(
  counts: readonly Pick<IntegrationCounts, "byStatus">[],
): Record<ConnectionStatus, number> {
  const totals: Record<ConnectionStatus, number> = {
    active: 0,
    expired: 0,
    needs_reauth: 0,
    error: 0,
  };
  for (const { byStatus } of counts) {
    for (const status of STATUSES) totals[status] += byStatus[status];
  }
  return totals;
}

export function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
