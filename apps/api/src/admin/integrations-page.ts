import type { ConsoleDeps } from "./deps";
import { countsNote, STATUSES } from "./fleet-stats";
import { type Html, html } from "./html";
import { when } from "./layout";
import { sum } from "./overview-page";

/** `GET /admin/integrations`: every integration with its connections per status. */
export async function renderIntegrations(deps: ConsoleDeps): Promise<Html> {
  const [fleet, integrations] = await Promise.all([
    deps.fleet.read(),
    deps.prisma.integration.findMany({
      select: { id: true, key: true, provider: true, updatedAt: true },
      orderBy: { key: "asc" },
    }),
  ]);
  return html`${countsNote(fleet)}
<section class="card" aria-label="Integrations"><div class="scroll"><table>
<thead><tr><th scope="col">integration</th><th scope="col">provider</th><th scope="col" class="num">connections</th>${STATUSES.map((status) => html`<th scope="col" class="num">${status}</th>`)}<th scope="col" class="num">refreshes (1 h)</th></tr></thead>
<tbody>${integrations.map(({ id, key, provider }) => {
    const counts = fleet?.byIntegration.get(id);
    return html`<tr><th scope="row"><a href="/admin/integrations/${encodeURIComponent(key)}">${key}</a></th><td>${provider}</td><td class="num">${sum(STATUSES.map((status) => counts?.byStatus[status] ?? 0))}</td>${STATUSES.map((status) => html`<td class="num">${counts?.byStatus[status] ?? 0}</td>`)}<td class="num">${sum(Object.values(counts?.refreshes ?? {}))}</td></tr>`;
  })}</tbody></table></div>
${integrations.length === 0 ? html`<p>No integration yet: create one with POST /v1/integrations.</p>` : ""}</section>`;
}

/** `GET /admin/integrations/:key`: its settings (never the secret), counts and recent outcomes. */
export async function renderIntegration(
  deps: ConsoleDeps,
  key: string,
): Promise<{ title: string; body: Html } | undefined> {
  const integration = await deps.prisma.integration.findUnique({
    where: { key },
    select: {
      id: true,
      key: true,
      provider: true,
      clientId: true,
      tokenUrl: true,
      refreshBufferSeconds: true,
      validateIntervalSeconds: true,
      updatedAt: true,
    },
  });
  if (!integration) return undefined;
  const [fleet, coolingMs] = await Promise.all([
    deps.fleet.read(),
    deps.refresh.cooldown.remainingMs(integration.id),
  ]);
  const counts = fleet?.byIntegration.get(integration.id);
  const outcomes = Object.entries(counts?.refreshes ?? {}).sort(([, a], [, b]) => b - a);
  const total = sum(outcomes.map(([, count]) => count));
  const filtered = (status: string) =>
    `/admin/connections?integration=${encodeURIComponent(integration.key)}&status=${status}`;
  const body = html`<div class="grid">
<section class="card" aria-labelledby="h-settings"><h2 id="h-settings">Settings</h2><dl class="facts">
<dt>provider</dt><dd>${integration.provider}</dd>
<dt>client id</dt><dd class="mono">${integration.clientId}</dd>
<dt>token URL</dt><dd class="mono">${integration.tokenUrl ?? "the provider's"}</dd>
<dt>refresh buffer</dt><dd>${integration.refreshBufferSeconds === null ? "default" : `${integration.refreshBufferSeconds} s`}</dd>
<dt>validation</dt><dd>${integration.validateIntervalSeconds === null ? "off" : `every ${integration.validateIntervalSeconds} s`}</dd>
<dt>cooling down</dt><dd>${coolingMs > 0 ? `${Math.ceil(coolingMs / 1000)} s left (429)` : "no"}</dd>
<dt>updated</dt><dd>${when(integration.updatedAt)}</dd>
</dl></section>
<section class="card" aria-labelledby="h-counts"><h2 id="h-counts">Connections per status</h2><dl class="facts">
${STATUSES.map((status) => html`<dt>${status}</dt><dd><a href="${filtered(status)}">${counts?.byStatus[status] ?? 0}</a></dd>`)}
<dt>overdue</dt><dd>${counts?.overdue ?? 0}</dd></dl>
${countsNote(fleet)}</section>
<section class="card" aria-labelledby="h-outcomes"><h2 id="h-outcomes">Refresh outcomes, last hour</h2>
${
  outcomes.length > 0
    ? html`<dl class="facts">${outcomes.map(([outcome, count]) => html`<dt>${outcome}</dt><dd>${count} <span class="muted">(${((count / total) * 100).toFixed(1)} %)</span></dd>`)}</dl>`
    : html`<p>No refresh in the last hour.</p>`
}</section></div>
<p><a href="/admin/connections?integration=${encodeURIComponent(integration.key)}">All its connections →</a></p>`;
  return { title: `Integration ${integration.key}`, body };
}
