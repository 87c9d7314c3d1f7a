import { mkdtempSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { AuditLogError, AuditWriteError, createAuditLog } from "./audit-log";

const dir = mkdtempSync(join(tmpdir(), "evergreen-audit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An audit log into an array, on a clock the test moves. */
function captured(options: { maxTrackedIps?: number } = {}) {
  const lines: Record<string, unknown>[] = [];
  const clock = { now: 0 };
  const audit = createAuditLog({
    name: "test",
    destination: new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
    now: () => clock.now,
    ...options,
  });
  return { audit, lines, clock };
}

describe("createAuditLog", () => {
  it("appends JSON lines marked audit to an AUDIT_LOG file", () => {
    const file = join(dir, "audit.log");
    const audit = createAuditLog({ name: "api", destination: file });
    audit.tokenRead({
      route: "/r",
      keyName: "k",
      connectionId: "c",
      ip: "192.0.2.1",
      outcome: "stored",
    });
    audit.close();
    const [line] = readFileSync(file, "utf8").trim().split("\n");
    expect(JSON.parse(line ?? "")).toMatchObject({
      audit: true,
      name: "api",
      kind: "token_read",
      keyName: "k",
      connectionId: "c",
      outcome: "stored",
    });
    // Created for its owner alone (umask aside, it was world-readable).
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("opens the path again on reopen(), so a file moved by logrotate stops receiving lines", () => {
    const file = join(dir, "rotated.log");
    const audit = createAuditLog({ name: "api", destination: file });
    const read = (outcome: string) =>
      audit.tokenRead({ route: "/r", keyName: "k", ip: "192.0.2.1", outcome });
    read("before");
    renameSync(file, `${file}.1`);
    read("moved");
    audit.reopen();
    read("after");
    audit.close();
    const outcomes = (path: string) =>
      readFileSync(path, "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).outcome);
    expect(outcomes(`${file}.1`)).toEqual(["before", "moved"]);
    expect(outcomes(file)).toEqual(["after"]);

    // A path that cannot be opened any more: an error naming AUDIT_LOG, the old file kept.
    const removed = mkdtempSync(join(dir, "removed-"));
    const other = createAuditLog({ name: "api", destination: join(removed, "audit.log") });
    rmSync(removed, { recursive: true });
    expect(() => other.reopen()).toThrow(`AUDIT_LOG: cannot open ${removed}/audit.log`);
    other.close();
  });

  it("refuses, naming AUDIT_LOG and the reason, a file that cannot be opened; makes no directory", () => {
    const file = join(dir, "missing", "audit.log");
    expect(() => createAuditLog({ name: "api", destination: file })).toThrow(AuditLogError);
    expect(() => createAuditLog({ name: "api", destination: file })).toThrow(
      `AUDIT_LOG: cannot open ${file} for appending (ENOENT)`,
    );
  });

  it("on a full disk: a token read throws; a security event is told to onWriteError, or throws", () => {
    const told: AuditWriteError[] = [];
    const audit = createAuditLog({
      name: "t",
      destination: "/dev/full",
      onWriteError: (error) => told.push(error),
    });
    const read = { keyName: "k", ip: "192.0.2.1", route: "/r", outcome: "stored" };
    expect(() => audit.tokenRead(read)).toThrow(AuditWriteError);
    audit.security({ event: "admin_login", keyName: "k", ip: "192.0.2.1" });
    audit.rejectedKey({ ip: "192.0.2.1", route: "/r", presented: true });
    expect(told).toHaveLength(2);
    const strict = createAuditLog({ name: "t", destination: "/dev/full" });
    expect(() => strict.security({ event: "admin_login", keyName: "k", ip: "192.0.2.1" })).toThrow(
      AuditWriteError,
    );
  });

  it("censors a secret field as the application log does", () => {
    const { audit, lines } = captured();
    // A field no caller should pass: the redaction still catches it.
    audit.tokenRead({ accessToken: "at-secret" } as never);
    expect(lines[0]).toMatchObject({ accessToken: "[redacted]" });
  });

  it("writes a rejected key once per IP per window, and the next line counts those left out", () => {
    const { audit, lines, clock } = captured();
    const attempt = (ip: string) => audit.rejectedKey({ ip, route: "/v1/x", presented: true });
    for (let i = 0; i < 5; i += 1) attempt("192.0.2.1");
    attempt("192.0.2.2");
    clock.now = 9_999;
    attempt("192.0.2.1");
    expect(lines.map(({ ip, suppressed }) => [ip, suppressed])).toEqual([
      ["192.0.2.1", 0],
      ["192.0.2.2", 0],
    ]);
    clock.now = 10_000;
    attempt("192.0.2.1");
    expect(lines.at(-1)).toMatchObject({
      event: "api_key_rejected",
      ip: "192.0.2.1",
      suppressed: 5,
    });
    attempt("192.0.2.1");
    audit.close();
    expect(lines.at(-1)).toEqual(expect.objectContaining({ ip: "192.0.2.1", suppressed: 1 }));
    expect(lines).toHaveLength(4);
  });

  it("counts an IPv6 client by its /64, so cycling addresses within it writes one line", () => {
    const { audit, lines, clock } = captured();
    const attempt = (ip: string) => audit.rejectedKey({ ip, route: "/v1/x", presented: true });
    for (let i = 1; i <= 1000; i += 1) attempt(`2001:db8:0:7::${i.toString(16)}`);
    attempt("2001:db8:0:7:ffff:1:2:3");
    attempt("2001:db8:0:8::1");
    attempt("::ffff:192.0.2.9");
    clock.now = 10_000;
    attempt("2001:0db8:0000:0007::9%eth0");
    expect(lines.map(({ ip, source, suppressed }) => [ip, source, suppressed])).toEqual([
      ["2001:db8:0:7::1", "2001:db8:0:7::/64", 0],
      ["2001:db8:0:8::1", "2001:db8:0:8::/64", 0],
      ["::ffff:192.0.2.9", "::ffff:192.0.2.9", 0],
      ["2001:0db8:0000:0007::9%eth0", "2001:db8:0:7::/64", 1000],
    ]);
  });

  it("remembers a bounded number of IPs, writing a forgotten one's count as it goes", () => {
    const { audit, lines } = captured({ maxTrackedIps: 2 });
    const attempt = (ip: string) => audit.rejectedKey({ ip, route: "/v1/x", presented: false });
    attempt("192.0.2.1");
    attempt("192.0.2.1");
    attempt("192.0.2.2");
    attempt("192.0.2.3");
    expect(lines.map(({ ip, suppressed }) => [ip, suppressed])).toEqual([
      ["192.0.2.1", 0],
      ["192.0.2.2", 0],
      ["192.0.2.1", 1],
      ["192.0.2.3", 0],
    ]);
  });
});
