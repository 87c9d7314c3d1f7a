import { z } from "zod";
import { HttpError } from "../http-errors";
import { decodeConnectionCursor, listConnections } from "../routes/connections";
import type { ConsoleDeps } from "./deps";
import { STATUSES } from "./fleet-stats";
import { type Html, html } from "./html";
import { statusBadge, when } from "./layout";

const PAGE_SIZE = 50;

/** A filter form leaves its empty fields in the query: they mean "any". */
const optional = <Schema extends z.ZodType>(schema: Schema) =>
  z.preprocess((value) => (value === "" ? undefined : value), schema.optional());

const filterQuery = z.strictObject({
  integration: optional(z.string().min(1).max(64)),
  status: optional(z.enum(["active", "expired", "needs_reauth", "error"])),
  externalId: optional(z.string().min(1).max(256)),
  /** Set by the redirect after a delete from the console. */
  deleted: optional(z.enum(["0", "1"])),
  cursor: optional(
    z.string().transform((value, ctx) => {
      const id = decodeConnectionCursor(value);
      if (id) return id;
      ctx.addIssue({ code: "custom", message: "not a cursor this page gave" });
      return z.NEVER;
    }),
  ),
});

/** `GET /admin/connections`: filtered, keyset paged (the list use case of GET /v1/connections). */
export async function renderConnections(deps: ConsoleDeps, query: unknown): Promise<Html> {
  const parsed = filterQuery.safeParse(query);
  if (!parsed.success) {
    const field = parsed.error.issues[0]?.path.join(".") || "query";
    throw new HttpError(400, "invalid_request", `${field}: not a filter this page offers`);
  }
  const filter = parsed.data;
  const [integrations, page] = await Promise.all([
    deps.prisma.integration.findMany({ select: { key: true }, orderBy: { key: "asc" } }),
    listConnections(deps.prisma, { ...filter, limit: PAGE_SIZE }),
  ]);
  const now = new Date();
  const keep = new URLSearchParams();
  if (filter.integration) keep.set("integration", filter.integration);
  if (filter.status) keep.set("status", filter.status);
  if (filter.externalId) keep.set("externalId", filter.externalId);
  const next = page.nextCursor
    ? `/admin/connections?${new URLSearchParams([...keep, ["cursor", page.nextCursor]])}`
    : null;
  const notice =
    filter.deleted === "1"
      ? html`<p class="notice" role="status">Deleted: the connection and its tokens are gone; the grant's revocation is queued.</p>`
      : filter.deleted === "0"
        ? html`<p class="notice bad" role="status">That connection no longer exists.</p>`
        : "";
  return html`${notice}<form class="filters" method="get" action="/admin/connections" role="search">
<label>Integration<select name="integration"><option value="">any</option>${integrations.map(
    ({ key }) =>
      html`<option value="${key}"${key === filter.integration ? html` selected` : ""}>${key}</option>`,
  )}</select></label>
<label>Status<select name="status"><option value="">any</option>${STATUSES.map(
    (status) =>
      html`<option value="${status}"${status === filter.status ? html` selected` : ""}>${status}</option>`,
  )}</select></label>
<label>External id (exact)<input name="externalId" value="${filter.externalId ?? ""}" maxlength="256" autocomplete="off"></label>
<button type="submit">Filter</button> <a class="button secondary" href="/admin/connections">Clear</a>
</form>
<section class="card" aria-label="Connections"><div class="scroll"><table>
<thead><tr><th scope="col">external id</th><th scope="col">integration</th><th scope="col">status</th><th scope="col">expires</th><th scope="col">next refresh</th><th scope="col">last error</th></tr></thead>
<tbody>${page.rows.map(
    (row) =>
      html`<tr><td><a class="mono" href="/admin/connections/${row.id}">${row.externalId}</a></td><td>${row.integration.key}</td><td>${statusBadge(row.status)}</td><td>${when(row.expiresAt, now)}</td><td>${when(row.nextRefreshAt, now)}</td><td>${row.lastErrorCode ? html`<code>${row.lastErrorCode}</code>` : html`<span class="muted">—</span>`}</td></tr>`,
  )}</tbody></table></div>
${page.rows.length === 0 ? html`<p>No connection matches.</p>` : ""}
${next ? html`<p><a href="${next}" rel="next">Next page →</a></p>` : ""}
</section>`;
}
