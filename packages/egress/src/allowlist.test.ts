import { describe, expect, it } from "vitest";
import { EgressConfigError, parseEgressAllowlist } from "./allowlist";

describe("parseEgressAllowlist", () => {
  it("reads hosts, host:port, addresses, [IPv6]:port and CIDRs", () => {
    expect(
      parseEgressAllowlist(
        " IdP.Internal , vault.internal:8200,10.0.0.5,10.0.0.6:8443,fd00::5,[fd00::6]:9000,10.20.0.0/16,fd00::/8,",
      ),
    ).toEqual([
      { kind: "host", host: "idp.internal", port: null },
      { kind: "host", host: "vault.internal", port: 8200 },
      { kind: "network", address: "10.0.0.5", prefix: 32, family: 4, port: null },
      { kind: "network", address: "10.0.0.6", prefix: 32, family: 4, port: 8443 },
      { kind: "network", address: "fd00::5", prefix: 128, family: 6, port: null },
      { kind: "network", address: "fd00::6", prefix: 128, family: 6, port: 9000 },
      { kind: "network", address: "10.20.0.0", prefix: 16, family: 4, port: null },
      { kind: "network", address: "fd00::", prefix: 8, family: 6, port: null },
    ]);
    expect(parseEgressAllowlist("")).toEqual([]);
    expect(parseEgressAllowlist("localhost")).toEqual([
      { kind: "host", host: "localhost", port: null },
    ]);
  });

  it("refuses what is none of these, naming the entry", () => {
    for (const [entry, reason] of [
      ["10.0.0.0/33", "prefix length must be 0 to 32"],
      ["fd00::/129", "prefix length must be 0 to 128"],
      ["10.0.0.0/", "prefix length"],
      ["idp.internal/16", "needs an IP address"],
      ["idp.internal:99999", "port must be 1 to 65535"],
      ["idp.internal:0", "port must be 1 to 65535"],
      ["[10.0.0.1]:80", "must hold an IPv6 address"],
      ["https://idp.internal", "must be a host name, not a URL"],
      ["*.internal", "must be a host name"],
      ["idp internal", "must be a host name"],
    ] as const) {
      let thrown: unknown;
      try {
        parseEgressAllowlist(`good.example, ${entry}`);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, entry).toBeInstanceOf(EgressConfigError);
      expect((thrown as Error).message).toContain(`entry "${entry}": `);
      expect((thrown as Error).message).toContain(reason);
    }
  });
});
