import { randomUUID } from "node:crypto";
import type { KeyRing } from "@evergreen/crypto";
import type { PrismaClient, WebhookEndpoint } from "@evergreen/db";
import type { InsecureTokenUrls } from "@evergreen/providers";
import type { WebhookEventType } from "./event-types";
import { generateWebhookSecret } from "./signing";

/** How long deliveries still carry the old secret's signature after a rotation. */
export const ROTATION_GRACE_MS = 24 * 3600 * 1000;

const sealSecret = (ring: KeyRing, endpointId: string, field: string, secret: string) =>
  ring.encrypt(secret, { entity: "webhook_endpoint", rowId: endpointId, field });

const openSecret = (ring: KeyRing, endpointId: string, field: string, sealed: string) =>
  ring.decrypt(sealed, { entity: "webhook_endpoint", rowId: endpointId, field });

export class WebhookUrlError extends Error {
  override name = "WebhookUrlError";
}

/**
 * A receiver's URL: absolute, no credentials (they would end up in logs), https unless
 * ALLOW_INSECURE_TOKEN_URLS allows http (to loopback only, outside production by default;
 * the same rule and variable as token URLs, since both carry what a network observer must
 * not read: a signed event names the app's user). Where it may lead is the egress
 * policy's call, at every delivery.
 *
 * @throws WebhookUrlError naming what is wrong.
 */
export function checkWebhookUrl(url: string, allowInsecure: InsecureTokenUrls): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WebhookUrlError("not an absolute URL");
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw new WebhookUrlError("must not contain credentials");
  }
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(parsed.hostname);
  const insecureAllowed =
    parsed.protocol === "http:" &&
    (allowInsecure === true || (allowInsecure === "loopback" && loopback));
  if (parsed.protocol !== "https:" && !insecureAllowed) {
    throw new WebhookUrlError("must use https");
  }
  return parsed.toString();
}

/** Endpoints and their sealed secrets. */
export class WebhookEndpointStore {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly keyRing: KeyRing,
  ) {}

  /** A new endpoint and its secret, which is never shown again. */
  async create(input: {
    readonly url: string;
    readonly events: readonly WebhookEventType[];
  }): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const id = randomUUID();
    const secret = generateWebhookSecret();
    const endpoint = await this.prisma.webhookEndpoint.create({
      data: {
        id,
        url: input.url,
        events: [...new Set(input.events)],
        secret: sealSecret(this.keyRing, id, "secret", secret),
      },
    });
    return { endpoint, secret };
  }

  /**
   * A new secret for the endpoint. The old one keeps signing alongside for
   * `ROTATION_GRACE_MS`, so receivers can switch without losing a delivery. Null when the
   * endpoint does not exist.
   */
  async rotateSecret(
    id: string,
    now = new Date(),
  ): Promise<{ endpoint: WebhookEndpoint; secret: string } | null> {
    const row = await this.prisma.webhookEndpoint.findUnique({ where: { id } });
    if (!row) return null;
    const secret = generateWebhookSecret();
    const current = openSecret(this.keyRing, id, "secret", row.secret);
    // Fenced on the secret read: of two rotations at once, one wins and the other is refused
    // (null) rather than leaving a secret its caller was shown but nothing signs with.
    const { count } = await this.prisma.webhookEndpoint.updateMany({
      where: { id, secret: row.secret },
      data: {
        secret: sealSecret(this.keyRing, id, "secret", secret),
        previousSecret: sealSecret(this.keyRing, id, "previousSecret", current),
        previousSecretExpiresAt: new Date(now.getTime() + ROTATION_GRACE_MS),
      },
    });
    if (count === 0) return null;
    const endpoint = await this.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } });
    return { endpoint, secret };
  }

  /** The secrets deliveries are signed with at `now`: the current one, then a rotated one still in grace. */
  signingSecrets(
    endpoint: Pick<WebhookEndpoint, "id" | "secret" | "previousSecret" | "previousSecretExpiresAt">,
    now: Date,
  ): string[] {
    const secrets = [openSecret(this.keyRing, endpoint.id, "secret", endpoint.secret)];
    if (
      endpoint.previousSecret &&
      endpoint.previousSecretExpiresAt &&
      endpoint.previousSecretExpiresAt > now
    ) {
      secrets.push(
        openSecret(this.keyRing, endpoint.id, "previousSecret", endpoint.previousSecret),
      );
    }
    return secrets;
  }
}
