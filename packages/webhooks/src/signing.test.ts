import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { generateWebhookSecret, MalformedSecretError, signWebhook } from "./signing";

const body = JSON.stringify({ type: "connection.created", timestamp: "2026-12-01T00:00:00.000Z" });

/** The standardwebhooks package (1.1) verifies what we sign: an independent implementation. */
const verify = (secret: string, headers: Record<string, string>) =>
  new Webhook(secret).verify(body, headers);

describe("signWebhook", () => {
  it("signs as Standard Webhooks 1.0 says: the reference library verifies it", () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const headers = signWebhook([secret], "evt-1", new Date(), body);
    expect(headers["webhook-id"]).toBe("evt-1");
    expect(headers["webhook-timestamp"]).toMatch(/^\d{10}$/);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(verify(secret, { ...headers })).toEqual(JSON.parse(body));
  });

  it("is refused by the reference library for another secret, body or id", () => {
    const secret = generateWebhookSecret();
    const headers = signWebhook([secret], "evt-1", new Date(), body);
    expect(() => verify(generateWebhookSecret(), { ...headers })).toThrow();
    expect(() => new Webhook(secret).verify(`${body} `, { ...headers })).toThrow();
    expect(() => verify(secret, { ...headers, "webhook-id": "evt-2" })).toThrow();
  });

  it("during a rotation carries both signatures: either secret verifies alone", () => {
    const [next, previous] = [generateWebhookSecret(), generateWebhookSecret()];
    const headers = signWebhook([next, previous], "evt-1", new Date(), body);
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
    expect(verify(next, { ...headers })).toBeTruthy();
    expect(verify(previous, { ...headers })).toBeTruthy();
  });

  it("refuses a secret not in whsec_ form", () => {
    expect(() => signWebhook(["secret"], "evt-1", new Date(), body)).toThrow(MalformedSecretError);
  });
});
