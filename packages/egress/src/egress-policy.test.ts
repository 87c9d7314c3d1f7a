import { describe, expect, it, vi } from "vitest";
import { parseEgressAllowlist } from "./allowlist";
import { EgressPolicy } from "./egress-policy";
import type { ResolveAll } from "./guarded-agents";

const strict = new EgressPolicy();

function refused(policy: EgressPolicy, addresses: readonly string[], port = 443): string[] {
  return addresses.filter((address) => !policy.allowsAddress(address, port));
}

describe("EgressPolicy", () => {
  it("refuses every internal IPv4 range, at its edges, and allows its public neighbours", () => {
    const internal = [
      "0.0.0.0",
      "0.255.255.255", // unspecified, this network
      "10.0.0.0",
      "10.255.255.255", // private
      "100.64.0.0",
      "100.127.255.255", // CGNAT
      "127.0.0.1",
      "127.255.255.254", // loopback
      "169.254.0.1",
      "169.254.169.254", // link-local, cloud metadata
      "172.16.0.0",
      "172.31.255.255", // private
      "192.0.0.1",
      "192.0.0.255", // IETF protocol assignments
      "192.0.2.2",
      "198.51.100.1",
      "203.0.113.255", // documentation
      "192.88.99.1", // 6to4 relay anycast
      "192.168.0.1",
      "192.168.255.255", // private
      "198.18.0.1",
      "198.19.255.255", // benchmarking
      "224.0.0.1",
      "239.255.255.255", // multicast
      "240.0.0.1",
      "255.255.255.255", // reserved, broadcast
    ];
    expect(refused(strict, internal)).toEqual(internal);
    const publicNeighbours = [
      "1.0.0.0",
      "9.255.255.255",
      "11.0.0.0",
      "100.63.255.255",
      "100.128.0.0",
      "126.255.255.255",
      "128.0.0.0",
      "169.253.255.255",
      "172.15.255.255",
      "172.32.0.0",
      "192.0.1.0",
      "192.0.3.0",
      "192.88.98.255",
      "192.88.100.0",
      "198.51.99.255",
      "198.51.101.0",
      "203.0.112.255",
      "203.0.114.0",
      "192.167.255.255",
      "192.169.0.0",
      "198.17.255.255",
      "198.20.0.0",
      "223.255.255.255",
    ];
    expect(refused(strict, publicNeighbours)).toEqual([]);
  });

  it("refuses every internal IPv6 range and allows public IPv6", () => {
    const internal = [
      "::", // unspecified
      "::1", // loopback
      "fe80::1",
      "febf:ffff::1", // link-local
      "fec0::1", // site-local
      "fc00::1",
      "fdff:ffff::1", // ULA
      "ff02::1",
      "ff0e::1", // multicast
      "::ffff:0:a00:1", // IPv4-translated 10.0.0.1
      "::ffff:0:808:808", // IPv4-translated, whatever it carries
      "64:ff9b:1::a00:1", // local-use NAT64
      "100::1", // discard-only
      "2001::1",
      "2001:10::1",
      "2001:1ff:ffff::1", // IETF protocol assignments, Teredo
      "2001:db8::1", // documentation
      "3fff::1",
      "5f00::1",
    ];
    expect(refused(strict, internal)).toEqual(internal);
    expect(
      refused(strict, ["2606:4700:4700::1111", "2001:4860:4860::8888", "2001:200::1", "2a00::1"]),
    ).toEqual([]);
  });

  it("checks an IPv4 address inside IPv6 (mapped, NAT64, 6to4) as the IPv4 address", () => {
    const internal = [
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:169.254.169.254",
      "::ffff:10.1.2.3",
      "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
      "64:ff9b::10.0.0.1",
      "2002:7f00:1::", // 6to4 of 127.0.0.1
      "2002:c0a8:101::1", // 6to4 of 192.168.1.1
      "::127.0.0.1", // IPv4-compatible
      "::a9fe:a9fe", // IPv4-compatible 169.254.169.254
    ];
    expect(refused(strict, internal)).toEqual(internal);
    expect(refused(strict, ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])).toEqual([]);
  });

  it("refuses a zoned link-local address and anything that is not an IP address", () => {
    expect(strict.allowsAddress("fe80::1%eth0", 443)).toBe(false);
    expect(strict.allowsAddress("localhost", 443)).toBe(false);
    expect(strict.allowsAddress("", 443)).toBe(false);
  });

  it("allows loopback, and only loopback, when told (outside production)", () => {
    const dev = new EgressPolicy({ allowLoopback: true });
    expect(refused(dev, ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"])).toEqual([]);
    const stillRefused = ["10.0.0.1", "169.254.169.254", "0.0.0.0", "::", "fd00::1", "fe80::1"];
    expect(refused(dev, stillRefused)).toEqual(stillRefused);
  });

  it("allows what an allowlisted CIDR or address covers, on any port", () => {
    const policy = new EgressPolicy({
      allowlist: parseEgressAllowlist("10.20.0.0/16, fd00:1::/32, 169.254.10.10"),
    });
    expect(refused(policy, ["10.20.0.1", "10.20.255.255", "::ffff:10.20.1.1"], 8443)).toEqual([]);
    expect(refused(policy, ["fd00:1::5", "fd00:1:ffff::1", "169.254.10.10"], 80)).toEqual([]);
    const outside = ["10.21.0.1", "fd00:2::1", "169.254.169.254", "127.0.0.1"];
    expect(refused(policy, outside)).toEqual(outside);
  });

  it("allows an allowlisted address:port on that port only", () => {
    const policy = new EgressPolicy({
      allowlist: parseEgressAllowlist("10.0.0.5:8443,[fd00::5]:9000"),
    });
    expect(policy.allowsAddress("10.0.0.5", 8443)).toBe(true);
    expect(policy.allowsAddress("10.0.0.5", 443)).toBe(false);
    expect(policy.allowsAddress("fd00::5", 9000)).toBe(true);
    expect(policy.allowsAddress("fd00::5", 9001)).toBe(false);
  });

  it("matches an allowlisted host name exactly, with its port if it names one", () => {
    const policy = new EgressPolicy({
      allowlist: parseEgressAllowlist("idp.internal, vault.internal:8200"),
    });
    expect(policy.allowsName("idp.internal", 443)).toBe(true);
    expect(policy.allowsName("IDP.Internal.", 8080)).toBe(true);
    expect(policy.allowsName("evil.idp.internal", 443)).toBe(false);
    expect(policy.allowsName("idp.internal.evil.example", 443)).toBe(false);
    expect(policy.allowsName("vault.internal", 8200)).toBe(true);
    expect(policy.allowsName("vault.internal", 443)).toBe(false);
    expect(strict.allowsName("idp.internal", 443)).toBe(false);
  });

  describe("refusesUrl", () => {
    it("refuses literal internal addresses in every spelling the URL parser accepts", () => {
      for (const url of [
        "http://127.0.0.1/token",
        "http://0x7f.1/token",
        "http://2130706433/token",
        "https://[::1]:8443/token",
        "https://[::ffff:127.0.0.1]/token",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00::1]/token",
        "https://0.0.0.0/token",
      ]) {
        expect(strict.refusesUrl(url), url).toBe(true);
      }
    });

    it("refuses other schemes and non-URLs, and leaves names to the connect-time check", () => {
      expect(strict.refusesUrl("ftp://example.com/token")).toBe(true);
      expect(strict.refusesUrl("data:application/json,{}")).toBe(true);
      expect(strict.refusesUrl("not a url")).toBe(true);
      expect(strict.refusesUrl("https://example.com/token")).toBe(false);
      expect(strict.refusesUrl("https://localhost/token")).toBe(false);
      expect(strict.refusesUrl("https://93.184.215.14/token")).toBe(false);
    });

    it("follows the allowlist and the loopback allowance, with the URL's port", () => {
      const policy = new EgressPolicy({
        allowLoopback: true,
        allowlist: parseEgressAllowlist("10.0.0.5:8443"),
      });
      expect(policy.refusesUrl("http://127.0.0.1:4000/token")).toBe(false);
      expect(policy.refusesUrl("http://[::1]:4000/token")).toBe(false);
      expect(policy.refusesUrl("https://10.0.0.5:8443/token")).toBe(false);
      expect(policy.refusesUrl("https://10.0.0.5/token")).toBe(true);
    });
  });

  describe("refusesUrlNow", () => {
    /** A resolver that knows these names and no others. */
    const hosts: Record<string, string[]> = {
      "intranet.example": ["93.184.215.14", "10.1.2.3"],
      "public.example": ["93.184.215.14", "2606:4700::1"],
    };
    const resolve: ResolveAll = (host, _options, callback) => {
      const found = hosts[host];
      if (!found) callback(Object.assign(new Error("not found"), { code: "ENOTFOUND" }), []);
      else
        callback(
          null,
          found.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })),
        );
    };

    it("refuses a name that resolves to an internal address, any of them", async () => {
      expect(await strict.refusesUrlNow("https://intranet.example/hook", resolve)).toBe(true);
      expect(await strict.refusesUrlNow("https://public.example/hook", resolve)).toBe(false);
      expect(await strict.refusesUrlNow("https://10.0.0.1/hook", resolve)).toBe(true);
      // Through the machine's own resolver: /etc/hosts names localhost.
      expect(await strict.refusesUrlNow("http://localhost:6379/")).toBe(true);
    });

    it("leaves a name that does not resolve, or the allowlist covers, to the connect-time check", async () => {
      expect(await strict.refusesUrlNow("https://nowhere.example/hook", resolve)).toBe(false);
      vi.useFakeTimers();
      try {
        const silent: ResolveAll = () => {};
        const waiting = strict.refusesUrlNow("https://silent.example/hook", silent);
        await vi.advanceTimersByTimeAsync(2_000);
        expect(await waiting).toBe(false);
      } finally {
        vi.useRealTimers();
      }
      const policy = new EgressPolicy({ allowlist: parseEgressAllowlist("intranet.example") });
      expect(await policy.refusesUrlNow("https://intranet.example/hook", resolve)).toBe(false);
      expect(
        await new EgressPolicy({ allowLoopback: true }).refusesUrlNow("http://localhost/"),
      ).toBe(false);
    });
  });
});
