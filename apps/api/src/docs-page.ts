import { createHash } from "node:crypto";
import type { OpenApiDocument, Operation } from "./openapi";

const STYLE = `body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2.5rem;border-bottom:1px solid #ccc}
section{margin:1.5rem 0;padding:.5rem 1rem;border-left:4px solid #8a8}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4}
pre{padding:.5rem;overflow:auto}
.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
.scope{color:#555}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}`;

/**
 * `/docs`: the document as one server-rendered page. No script and nothing fetched from
 * elsewhere (this api may run where nothing else is reachable, and a page listing an API
 * should not run third-party code), so the policy allows only its own inline style, by hash.
 */
export function renderDocsPage(document: OpenApiDocument): {
  readonly html: string;
  readonly contentSecurityPolicy: string;
} {
  const styleHash = createHash("sha256").update(STYLE).digest("base64");
  const byTag = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const tag = operation.tags[0] ?? "other";
      byTag.set(tag, [...(byTag.get(tag) ?? []), renderOperation(path, method, operation)]);
    }
  }
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(document.info.title)} API</title>
<style>${STYLE}</style></head><body>
<h1>${escapeHtml(document.info.title)} API <small>${escapeHtml(document.info.version)}</small></h1>
<p>${escapeHtml(document.info.description)}</p>
<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
${[...byTag].map(([tag, operations]) => `<h2>${escapeHtml(tag)}</h2>\n${operations.join("\n")}`).join("\n")}
<h2>Schemas</h2>
${Object.entries(document.components.schemas)
  .map(
    ([name, schema]) =>
      `<section id="${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3>${json(schema)}</section>`,
  )
  .join("\n")}
</body></html>`;
  return {
    html,
    contentSecurityPolicy: `default-src 'none'; style-src 'sha256-${styleHash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  };
}

function renderOperation(path: string, method: string, operation: Operation): string {
  const rows = (operation.parameters ?? []).map(
    (parameter) =>
      `<tr><td><code>${escapeHtml(parameter.name)}</code></td><td>${parameter.in}${parameter.required ? ", required" : ""}</td><td>${json(parameter.schema)}</td><td>${escapeHtml(parameter.description ?? "")}</td></tr>`,
  );
  const body = operation.requestBody?.content["application/json"]?.schema;
  const responses = Object.entries(operation.responses).map(([status, answer]) => {
    const schema = Object.values(answer.content ?? {})[0]?.schema;
    return `<tr><td>${escapeHtml(status)}</td><td>${escapeHtml(answer.description)}</td><td>${schema ? json(schema) : ""}</td></tr>`;
  });
  const scope = operation["x-required-scope"];
  return `<section id="${escapeHtml(operation.operationId)}">
<h3><span class="method">${escapeHtml(method)}</span><code>${escapeHtml(path)}</code></h3>
<p>${escapeHtml(operation.summary)}</p>
${(operation.description ?? "")
  .split("\n\n")
  .map((paragraph) => `<p>${escapeHtml(paragraph)}</p>`)
  .join("")}
<p class="scope">${scope ? `Scope: <code>${escapeHtml([scope].flat().join(" | "))}</code>` : "Public"}</p>
${rows.length > 0 ? `<table><tr><th>parameter</th><th>in</th><th>schema</th><th></th></tr>${rows.join("")}</table>` : ""}
${body ? `<h4>Body</h4>${json(body)}` : ""}
<h4>Responses</h4><table>${responses.join("")}</table>
</section>`;
}

/** A schema as indented JSON, its `$ref`s linked to the schema's section. */
function json(value: unknown): string {
  return `<pre>${escapeHtml(JSON.stringify(value, null, 2)).replace(
    /&quot;#\/components\/schemas\/(\w+)&quot;/g,
    '<a href="#$1">&quot;#/components/schemas/$1&quot;</a>',
  )}</pre>`;
}

function escapeHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}
