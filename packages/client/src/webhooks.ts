import { createHmac, timingSafeEqual } from "node:crypto";
import type { Schemas } from "./generated/openapi-types.js";

/** What a webhook delivers (and, with its id, the event feed lists); never a token. */
export type WebhookEvent = Schemas["WebhookEvent"];
export type WebhookEventType = WebhookEvent["type"];

/** A webhook that failed verification: answer it 400 and process nothing. */
export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
}

export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, either way, in seconds. @defaultValue 300 */
  readonly toleranceSeconds?: number;
}

type HeaderBag = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * Checks a webhook per Standard Webhooks 1.0 and returns its event: the HMAC-SHA256 of
 * `${webhook-id}.${webhook-timestamp}.${body}` under the secret's bytes (after `whsec_`)
 * must match one of the `v1,<base64>` signatures (several during a secret rotation), and
 * the timestamp must be within 5 minutes of now, so a captured delivery cannot be replayed
 * later. Pass the body exactly as received: a re-serialized JSON changes the signature.
 * Dedupe on `webhook-id`: a delivery may come twice after a crash.
 */
export function verifyWebhook(
  headers: HeaderBag,
  rawBody: string | Uint8Array,
  secret: string,
  { toleranceSeconds = 300 }: VerifyOptions = {},
): WebhookEvent {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError(
      "missing webhook-id, webhook-timestamp or webhook-signature",
    );
  }
  if (!/^\d{1,15}$/.test(timestamp)) throw new WebhookVerificationError("malformed timestamp");
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) {
    throw new WebhookVerificationError("timestamp too old or too far in the future");
  }
  const body = typeof rawBody === "string" ? Buffer.from(rawBody, "utf8") : Buffer.from(rawBody);
  const expected = createHmac("sha256", secretKey(secret))
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest();
  const matches = signatures.split(" ").some((entry) => {
    const [version, signature] = entry.split(",", 2);
    if (version !== "v1" || !signature) return false;
    const presented = Buffer.from(signature, "base64");
    return presented.length === expected.length && timingSafeEqual(presented, expected);
  });
  if (!matches) throw new WebhookVerificationError("no signature matches");
  return JSON.parse(body.toString("utf8")) as WebhookEvent;
}

function secretKey(secret: string): Buffer {
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
  if (key.length === 0) throw new WebhookVerificationError("the secret is empty");
  return key;
}

function header(headers: HeaderBag, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  return typeof entry === "string" ? entry : entry?.join(" ");
}
