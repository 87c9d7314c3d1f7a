import { createHash } from "node:crypto";

/**
 * The console's only style sheet and script, served from /admin/assets under the page
 * policy `style-src 'self'; script-src 'self'` (no inline style or script anywhere).
 * Readable on a phone: one column under 40rem, tables scroll sideways in their box.
 */
const STYLE = `:root{color-scheme:light;--fg:#1d2330;--muted:#5b6474;--line:#d8dde6;--bg:#f6f7f9;--accent:#0b57d0;--bad:#b3261e;--warn:#8a5a00;--good:#146c2e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}
header a{color:#fff;text-decoration:none;padding:.25rem .1rem}
header a[aria-current=page]{border-bottom:2px solid #fff}
header .brand{font-weight:700;margin-right:auto}
header form{margin:0}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
section.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;margin:0 0 1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
.status{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.85rem;border:1px solid currentColor}
.status-active{color:var(--good)}.status-expired{color:var(--warn)}.status-needs_reauth,.status-error{color:var(--bad)}
.muted{color:var(--muted)}
.notice{padding:.5rem .75rem;border-radius:4px;background:#e8f0fe;border:1px solid #aac4f5;margin:0 0 1rem}
.notice.bad{background:#fce8e6;border-color:#f1aaa5}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end}
label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted);gap:.15rem}
input,select,button,.button{font:inherit;padding:.4rem .6rem;border:1px solid #9aa3b2;border-radius:4px;background:#fff;color:var(--fg)}
button,.button{background:var(--accent);border-color:var(--accent);color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}
button.danger{background:var(--bad);border-color:var(--bad)}
header button{background:transparent;border-color:#fff;padding:.15rem .5rem}
.actions{display:flex;flex-wrap:wrap;gap:.5rem}
a{color:var(--accent)}
:focus-visible{outline:3px solid #f9ab00;outline-offset:2px}
.login{max-width:26rem;margin:3rem auto}
.login form{display:flex;flex-direction:column;gap:.75rem}
@media (max-width:40rem){main{padding:.5rem}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:.4rem}th,td{padding:.3rem}}`;

/**
 * Progressive enhancement, nothing more: a page marked `data-live` re-reads its
 * `[data-live-region]` every few seconds while visible, so refreshes show up without a
 * click. Without the script every page still works (links and forms only).
 */
const SCRIPT = `"use strict";
(() => {
  const seconds = Number(document.body.dataset.live);
  if (!seconds) return;
  setInterval(async () => {
    if (document.visibilityState !== "visible") return;
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live-region]")) {
      const fresh = next.getElementById(region.id);
      if (fresh) region.replaceWith(fresh);
    }
  }, seconds * 1000);
})();
`;

function asset(body: string, contentType: string) {
  const version = createHash("sha256").update(body).digest("base64url").slice(0, 12);
  return { body, contentType, version };
}

/** By file name; pages link them with `?v=<version>` so a new build is never served stale. */
export const ASSETS = {
  "console.css": asset(STYLE, "text/css; charset=utf-8"),
  "console.js": asset(SCRIPT, "text/javascript; charset=utf-8"),
} as const;

export type AssetName = keyof typeof ASSETS;

export function assetUrl(name: AssetName): string {
  return `/admin/assets/${name}?v=${ASSETS[name].version}`;
}
