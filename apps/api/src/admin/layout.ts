import type { FastifyReply } from "fastify";
import { assetUrl } from "./assets";
import { type Html, html } from "./html";
import type { AdminSession } from "./session";

/**
 * Every /admin answer's policy: nothing but this origin's style sheet and script, forms
 * posting only here, never framed (clickjacking of the action buttons), no <base> games.
 * `connect-src 'self'` lets the script re-read a live page.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** The headers every console answer carries, pages, redirects and errors alike. */
export function setConsoleHeaders(reply: FastifyReply): void {
  reply
    .header("content-security-policy", CONTENT_SECURITY_POLICY)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("x-frame-options", "DENY")
    .header("cache-control", "no-store");
}

export type Section = "overview" | "connections" | "integrations" | "none";

export interface PageOptions {
  readonly title: string;
  readonly session?: AdminSession | undefined;
  readonly section?: Section;
  /** Seconds between re-reads of the page's `[data-live-region]`s (assets.ts). */
  readonly liveSeconds?: number;
  readonly body: Html;
}

const NAV: readonly { section: Section; href: string; label: string }[] = [
  { section: "overview", href: "/admin", label: "Overview" },
  { section: "connections", href: "/admin/connections", label: "Connections" },
  { section: "integrations", href: "/admin/integrations", label: "Integrations" },
];

export function page({ title, session, section = "none", liveSeconds, body }: PageOptions): Html {
  const nav = session
    ? html`<nav aria-label="Console">${NAV.map(
        (item) =>
          html`<a href="${item.href}"${item.section === section ? html` aria-current="page"` : ""}>${item.label}</a> `,
      )}</nav>
      <form method="post" action="/admin/logout">${csrfField(session)}<button type="submit">Sign out ${session.keyName}</button></form>`
    : "";
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Evergreen admin</title>
<link rel="stylesheet" href="${assetUrl("console.css")}">
<script src="${assetUrl("console.js")}" defer></script></head>
<body${liveSeconds ? html` data-live="${liveSeconds}"` : ""}>
<header><span class="brand">Evergreen admin</span>${nav}</header>
<main id="main">
<h1>${title}</h1>
${body}
</main></body></html>`;
}

/** The hidden synchronizer token every state-changing form carries. */
export function csrfField(session: AdminSession): Html {
  return html`<input type="hidden" name="csrf" value="${session.csrfToken}">`;
}

export function statusBadge(status: string): Html {
  return html`<span class="status status-${status}">${status.replace("_", " ")}</span>`;
}

/** An instant as the console shows it: ISO 8601 UTC to the second, with a relative hint. */
export function when(date: Date | null | undefined, now = new Date()): Html {
  if (!date) return html`<span class="muted">—</span>`;
  const iso = date.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace("T", " ")}Z</time> <span class="muted">(${relative(date.getTime() - now.getTime())})</span>`;
}

function relative(ms: number): string {
  const seconds = Math.round(Math.abs(ms) / 1000);
  const text =
    seconds < 90
      ? `${seconds} s`
      : seconds < 5400
        ? `${Math.round(seconds / 60)} min`
        : seconds < 172_800
          ? `${Math.round(seconds / 3600)} h`
          : `${Math.round(seconds / 86_400)} d`;
  // Within a second counts as past: "counts as of now" should not read "in 0 s".
  return ms >= 1000 ? `in ${text}` : `${text} ago`;
}

export function sendPage(reply: FastifyReply, status: number, content: Html) {
  return reply.status(status).type("text/html; charset=utf-8").send(content.text);
}
