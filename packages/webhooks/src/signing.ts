import { createHmac, randomBytes } from "node:crypto";

/** Standard Webhooks 1.0 secrets: `whsec_` and the base64 of the key's bytes. */
const SECRET_PREFIX = "whsec_";
const SECRET_BYTES = 32;

export class MalformedSecretError extends Error {
  override name = "MalformedSecretError";
  constructor() {
    super("a webhook secret is whsec_ followed by base64");
  }
}

/** A fresh signing secret: 32 random bytes. */
export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString("base64")}`;
}

function secretBytes(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new MalformedSecretError();
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), "base64");
  if (key.length === 0) throw new MalformedSecretError();
  return key;
}

/** The headers Standard Webhooks 1.0 defines for one message. */
export interface WebhookHeaders {
  readonly "webhook-id": string;
  readonly "webhook-timestamp": string;
  readonly "webhook-signature": string;
}

/**
 * Signs `body` for message `id` at `timestamp` with every secret given: `v1,<base64
 * HMAC-SHA256 of id.timestamp.body>`, space-separated, so that during a rotation a receiver
 * that knows either secret verifies the message.
 */
export function signWebhook(
  secrets: readonly string[],
  id: string,
  timestamp: Date,
  body: string,
): WebhookHeaders {
  const seconds = String(Math.floor(timestamp.getTime() / 1000));
  const signed = `${id}.${seconds}.${body}`;
  const signature = secrets
    .map(
      (secret) => `v1,${createHmac("sha256", secretBytes(secret)).update(signed).digest("base64")}`,
    )
    .join(" ");
  return { "webhook-id": id, "webhook-timestamp": seconds, "webhook-signature": signature };
}
