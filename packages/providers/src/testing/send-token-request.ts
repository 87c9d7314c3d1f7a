import type { ProviderAnswer, TokenRequest } from "../types";

/**
 * Sends a built request over real HTTP (fetch) and reads the answer as classifyAnswer takes
 * it. For tests against the mock provider: no egress policy, no size limit.
 */
export async function sendTokenRequest(request: TokenRequest): Promise<ProviderAnswer> {
  const response = await fetch(request.url, {
    method: request.method,
    headers: request.headers,
    body: request.body,
  });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
  };
}
