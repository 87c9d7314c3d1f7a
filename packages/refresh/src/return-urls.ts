/**
 * Where a connect flow may send the user back (SPEC §3, `returnUrls`). An allowlist entry is
 * an http(s) URL without credentials, query or fragment:
 * - an origin (`https://app.example.com`, path `/`) allows every URL of that origin;
 * - a URL with a path (`https://app.example.com/connect`) allows that path and the paths
 *   under it (`/connect`, `/connect/done`), never a sibling that merely starts alike
 *   (`/connected`).
 * Scheme, host and port must match exactly, compared after WHATWG parsing (lower-case
 * host, default port dropped, dot segments resolved), never as substrings: neither
 * `https://app.example.com.evil.net` nor `https://evil.net/?https://app.example.com`
 * passes. A return URL may carry its own query (the app's state), and the flow's
 * `connectionId`, `status` or `error` are set in it.
 */

/** What is wrong with an allowlist entry, or null; `normalized` is what to store. */
export function checkReturnUrlEntry(entry: string): { problem: string } | { normalized: string } {
  const url = parseHttpUrl(entry);
  if (url === null) return { problem: "must be an http or https URL" };
  if (url.username !== "" || url.password !== "") {
    return { problem: "must not contain credentials" };
  }
  if (url.search !== "" || url.hash !== "" || entry.includes("?") || entry.includes("#")) {
    return { problem: "must be an origin or a URL with a path, without query or fragment" };
  }
  return { normalized: url.toString() };
}

/** Whether `returnUrl` is one the allowlist admits (see the rule above). */
export function isReturnUrlAllowed(allowlist: readonly string[], returnUrl: string): boolean {
  const url = parseHttpUrl(returnUrl);
  if (url === null || url.username !== "" || url.password !== "") return false;
  return allowlist.some((entry) => {
    const allowed = parseHttpUrl(entry);
    if (allowed === null || allowed.origin !== url.origin) return false;
    const base = allowed.pathname;
    if (base === "/" || url.pathname === base) return true;
    return url.pathname.startsWith(base.endsWith("/") ? base : `${base}/`);
  });
}

function parseHttpUrl(text: string): URL | null {
  if (!URL.canParse(text)) return null;
  const url = new URL(text);
  return url.protocol === "https:" || url.protocol === "http:" ? url : null;
}
