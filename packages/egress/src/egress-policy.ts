import type { LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";
import type { AllowlistEntry } from "./allowlist";
import { type ResolveAll, resolveWithDns } from "./guarded-agents";

/**
 * IPv4 ranges that are not the public internet: a caller who could point Evergreen at
 * them would reach this machine, its network or the cloud's metadata service
 * (169.254.169.254) with a client secret in hand. The IANA special-purpose registry's
 * ranges that are not globally reachable: the documentation ranges too, which no public
 * host uses but a lab or a sandbox may give its own machines (seen here: the api's own
 * address was 192.0.2.2, and a webhook reached it).
 */
const INTERNAL_IPV4: readonly (readonly [string, number])[] = [
  ["0.0.0.0", 8], // unspecified, "this network" (0.0.0.0 connects to localhost on Linux)
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata services
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation (TEST-NET-1)
  ["192.88.99.0", 24], // 6to4 relay anycast (deprecated)
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation (TEST-NET-2)
  ["203.0.113.0", 24], // documentation (TEST-NET-3)
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and 255.255.255.255 broadcast
];

const INTERNAL_IPV6: readonly (readonly [string, number])[] = [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1): ::127.0.0.1 is no public address.
  ["::", 96],
  // IPv4-translated (SIIT, RFC 6052 §2.1's ::ffff:0:a.b.c.d) and local-use NAT64
  // (64:ff9b:1::/48): a translator forwards them to the IPv4 address inside, any of them.
  ["::ffff:0:0:0", 96],
  ["64:ff9b:1::", 48],
  ["100::", 64], // discard-only
  ["2001::", 23], // IETF protocol assignments (Teredo, which carries IPv4, among them)
  ["2001:db8::", 32], // documentation
  ["3fff::", 20], // documentation
  ["5f00::", 16], // segment routing (SRv6) identifiers
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated, still routed by some stacks)
  ["fc00::", 7], // unique local (ULA)
  ["ff00::", 8], // multicast
];

/**
 * IPv6 forms that carry an IPv4 address a gateway may forward to: NAT64 (64:ff9b::/96)
 * and 6to4 (2002::/16). IPv4-mapped addresses (::ffff:a.b.c.d) need nothing here:
 * BlockList checks them against the IPv4 rules.
 */
function embeddedIpv4(address: string, prefix: number): [string, number][] {
  const [a = 0, b = 0, c = 0, d = 0] = address.split(".").map(Number);
  const hex = (high: number, low: number) => ((high << 8) | low).toString(16);
  return [
    [`64:ff9b::${hex(a, b)}:${hex(c, d)}`, 96 + prefix],
    [`2002:${hex(a, b)}:${hex(c, d)}::`, 16 + prefix],
  ];
}

const INTERNAL = new BlockList();
for (const [address, prefix] of INTERNAL_IPV4) {
  INTERNAL.addSubnet(address, prefix, "ipv4");
  for (const [v6, v6Prefix] of embeddedIpv4(address, prefix)) {
    INTERNAL.addSubnet(v6, v6Prefix, "ipv6");
  }
}
for (const [address, prefix] of INTERNAL_IPV6) INTERNAL.addSubnet(address, prefix, "ipv6");

/** How long `refusesUrlNow` waits for DNS. */
const REGISTRATION_LOOKUP_MS = 2_000;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

export interface EgressPolicyOptions {
  /** Parsed `EGRESS_ALLOWLIST`. @defaultValue [] */
  readonly allowlist?: readonly AllowlistEntry[];
  /**
   * Loopback addresses may be reached without an allowlist entry: outside production,
   * where a local mock provider is how development and tests work. @defaultValue false
   */
  readonly allowLoopback?: boolean;
}

/**
 * Which hosts and addresses outbound calls may reach (SPEC §2 "Never"). Decisions are
 * made on the address a connection goes to (see guarded-agents.ts), so a name that
 * resolves to an internal address, now or after a DNS change, is refused like the address.
 */
export class EgressPolicy {
  readonly #allowLoopback: boolean;
  readonly #hosts = new Set<string>();
  readonly #networks = new BlockList();
  readonly #portNetworks = new Map<number, BlockList>();

  constructor(options: EgressPolicyOptions = {}) {
    this.#allowLoopback = options.allowLoopback ?? false;
    for (const entry of options.allowlist ?? []) {
      if (entry.kind === "host") {
        this.#hosts.add(entry.port === null ? entry.host : `${entry.host}:${entry.port}`);
        continue;
      }
      let list = this.#networks;
      if (entry.port !== null) {
        list = this.#portNetworks.get(entry.port) ?? new BlockList();
        this.#portNetworks.set(entry.port, list);
      }
      list.addSubnet(entry.address, entry.prefix, entry.family === 4 ? "ipv4" : "ipv6");
    }
  }

  /** The allowlist names this host (with this port or any): whatever it resolves to is allowed. */
  allowsName(host: string, port: number): boolean {
    if (this.#hosts.size === 0) return false;
    const name = host.toLowerCase().replace(/\.$/, "");
    return this.#hosts.has(name) || this.#hosts.has(`${name}:${port}`);
  }

  /** A connection to `address` on `port` may be opened. Anything not an IP address is refused. */
  allowsAddress(address: string, port: number): boolean {
    // A zone (fe80::1%eth0) would make BlockList miss the range.
    const zone = address.indexOf("%");
    const bare = zone >= 0 ? address.slice(0, zone) : address;
    const family = isIP(bare);
    if (family === 0) return false;
    const type = family === 4 ? "ipv4" : "ipv6";
    if (!INTERNAL.check(bare, type)) return true;
    if (this.#allowLoopback && LOOPBACK.check(bare, type)) return true;
    if (this.#networks.check(bare, type)) return true;
    return this.#portNetworks.get(port)?.check(bare, type) ?? false;
  }

  /**
   * What can be refused without resolving a name: a scheme other than http(s), or a
   * literal IP address the policy refuses. A name passes here; its addresses are checked
   * when a connection is opened.
   */
  refusesUrl(url: string): boolean {
    const destination = httpDestination(url);
    if (!destination) return true;
    const { host, port } = destination;
    if (isIP(host) === 0 || this.allowsName(host, port)) return false;
    return !this.allowsAddress(host, port);
  }

  /**
   * `refusesUrl`, and a name that resolves now to an address the policy refuses (localhost,
   * a name in /etc/hosts): what registering a URL can tell its owner at once. A name that
   * does not resolve passes; the check at each connection stays the guard, DNS may change.
   */
  async refusesUrlNow(url: string, resolve: ResolveAll = resolveWithDns): Promise<boolean> {
    if (this.refusesUrl(url)) return true;
    const destination = httpDestination(url);
    if (!destination) return true;
    const { host, port } = destination;
    if (isIP(host) !== 0 || this.allowsName(host, port)) return false;
    let timer: NodeJS.Timeout | undefined;
    // A resolver that does not answer holds no registration for long: the name passes.
    const addresses = await new Promise<readonly LookupAddress[]>((done) => {
      timer = setTimeout(() => done([]), REGISTRATION_LOOKUP_MS);
      resolve(host, {}, (error, found) => done(error ? [] : found));
    }).finally(() => clearTimeout(timer));
    return addresses.some(({ address }) => !this.allowsAddress(address, port));
  }
}

/** An http(s) URL's host (brackets off an IPv6 literal) and port; null for anything else. */
function httpDestination(url: string): { host: string; port: number } | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return null;
  const host = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { host, port: Number(parsed.port) || (parsed.protocol === "https:" ? 443 : 80) };
}
