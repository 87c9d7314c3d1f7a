import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { verifyWebhook, WebhookVerificationError } from "./webhooks.js";

// Signatures made by the `standardwebhooks` package, an implementation independent of ours.
const secret = `whsec_${randomBytes(32).toString("base64")}`;
const otherSecret = `whsec_${randomBytes(32).toString("base64")}`;
const body = JSON.stringify({
  type: "connection.needs_reauth",
  timestamp: "2026-12-01T10:00:00.000Z",
  data: { connectionId: "c1", integration: "google", externalId: "u1", status: "needs_reauth" },
});

function signed(options: { at?: Date; secret?: string; id?: string } = {}) {
  const id = options.id ?? `msg_${randomBytes(8).toString("hex")}`;
  const at = options.at ?? new Date();
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(options.secret ?? secret).sign(id, at, body),
  };
}

describe("verifyWebhook", () => {
  it("accepts a delivery signed per Standard Webhooks and returns its event", () => {
    const event = verifyWebhook(signed(), body, secret);
    expect(event).toMatchObject({ type: "connection.needs_reauth", data: { connectionId: "c1" } });
  });

  it("takes a Headers object and a Buffer body as well", () => {
    const event = verifyWebhook(new Headers(signed()), Buffer.from(body), secret);
    expect(event.type).toBe("connection.needs_reauth");
  });

  it("accepts any one of several signatures, as sent during a secret rotation", () => {
    const headers = signed({ secret: otherSecret });
    const current = signed({ id: headers["webhook-id"], at: new Date() });
    headers["webhook-signature"] =
      `${headers["webhook-signature"]} ${current["webhook-signature"]}`;
    headers["webhook-timestamp"] = current["webhook-timestamp"];
    expect(verifyWebhook(headers, body, secret).type).toBe("connection.needs_reauth");
  });

  it.each([
    ["another secret", () => verifyWebhook(signed({ secret: otherSecret }), body, secret)],
    ["a changed body", () => verifyWebhook(signed(), body.replace("c1", "c2"), secret)],
    ["a changed id", () => verifyWebhook({ ...signed(), "webhook-id": "msg_other" }, body, secret)],
    [
      "a timestamp 6 minutes old",
      () => verifyWebhook(signed({ at: new Date(Date.now() - 360_000) }), body, secret),
    ],
    [
      "a timestamp 6 minutes ahead",
      () => verifyWebhook(signed({ at: new Date(Date.now() + 360_000) }), body, secret),
    ],
    [
      "a signature of another version",
      () => {
        const headers = signed();
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,");
        return verifyWebhook(headers, body, secret);
      },
    ],
    [
      "no signature header",
      () => {
        const { "webhook-signature": _, ...headers } = signed();
        return verifyWebhook(headers, body, secret);
      },
    ],
  ])("refuses %s", (_label, verify) => {
    expect(verify).toThrow(WebhookVerificationError);
  });

  it("agrees with the independent implementation on what it accepts", () => {
    const headers = signed();
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(verifyWebhook(headers, body, secret)).toEqual(JSON.parse(body));
  });
});
