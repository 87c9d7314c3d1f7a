import { isIP } from "node:net";

/**
 * One `EGRESS_ALLOWLIST` entry: what outbound calls may reach although the address is
 * loopback, private or otherwise internal. Public addresses need no entry.
 */
export type AllowlistEntry =
  /** A host name, matched exactly (case aside) against the URL's host; any address it resolves to. */
  | { readonly kind: "host"; readonly host: string; readonly port: number | null }
  /** An address range (a bare address is a /32 or /128), matched against resolved addresses. */
  | {
      readonly kind: "network";
      readonly address: string;
      readonly prefix: number;
      readonly family: 4 | 6;
      readonly port: number | null;
    };

/** An `EGRESS_ALLOWLIST` entry that is not a host, `host:port` or CIDR. */
export class EgressConfigError extends Error {
  override name = "EgressConfigError";
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`entry "${entry}": ${reason}`);
  }
}

// RFC 1123 labels; no scheme, path or wildcard, so an entry names exactly one host.
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const BRACKETED = /^\[([^\]]+)\](?::(\d+))?$/;

/**
 * Parses `EGRESS_ALLOWLIST`: a comma list of host names (`idp.internal`), `host:port`
 * (`idp.internal:8443`, `10.0.0.5:8443`, `[fd00::5]:8443`), addresses (`10.0.0.5`,
 * `fd00::5`) and CIDRs (`10.20.0.0/16`, `fd00::/8`). Empty items are ignored.
 *
 * @throws EgressConfigError naming the first entry that is none of these.
 */
export function parseEgressAllowlist(spec: string): AllowlistEntry[] {
  return spec
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "")
    .map(parseEntry);
}

function parseEntry(text: string): AllowlistEntry {
  const entry = text.toLowerCase();
  if (entry.includes("://")) throw new EgressConfigError(text, "must be a host name, not a URL");
  const slash = entry.indexOf("/");
  if (slash >= 0) {
    const address = entry.slice(0, slash);
    const prefixText = entry.slice(slash + 1);
    const family = isIP(address);
    if (family === 0) throw new EgressConfigError(text, "a CIDR needs an IP address before /");
    const prefix = Number(prefixText);
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
      throw new EgressConfigError(text, `the prefix length must be 0 to ${max}`);
    }
    return { kind: "network", address, prefix, family: family === 4 ? 4 : 6, port: null };
  }
  const bracketed = BRACKETED.exec(entry);
  if (bracketed) {
    const address = bracketed[1] ?? "";
    if (isIP(address) !== 6) throw new EgressConfigError(text, "[...] must hold an IPv6 address");
    return network(address, 6, portOf(text, bracketed[2]));
  }
  const family = isIP(entry);
  if (family !== 0) return network(entry, family === 4 ? 4 : 6, null);
  const colon = entry.lastIndexOf(":");
  const host = colon >= 0 ? entry.slice(0, colon) : entry;
  const port = colon >= 0 ? portOf(text, entry.slice(colon + 1)) : null;
  if (isIP(host) === 4) return network(host, 4, port);
  if (!HOST_NAME.test(host)) {
    throw new EgressConfigError(
      text,
      "must be a host name, host:port, an IP address or a CIDR (IPv6 with a port in brackets)",
    );
  }
  return { kind: "host", host, port };
}

function network(address: string, family: 4 | 6, port: number | null): AllowlistEntry {
  return { kind: "network", address, prefix: family === 4 ? 32 : 128, family, port };
}

function portOf(entry: string, text: string | undefined): number | null {
  if (text === undefined) return null;
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
    throw new EgressConfigError(entry, "the port must be 1 to 65535");
  }
  return port;
}
