// `@evergreen/client/axios`: a subpath of its own, so that the main entry needs no axios.
import type { AxiosError, AxiosInstance, InternalAxiosRequestConfig } from "axios";
import type { EvergreenClient, TokenOptions } from "./client.js";

/** What the interceptors keep on a request's config (copied by axios into a retry's). */
type TrackedConfig = InternalAxiosRequestConfig & {
  /** The token the request was sent with. */
  evergreenToken?: string;
  /** Already sent again after a 401: a second 401 is the caller's. */
  evergreenRetried?: boolean;
};

/**
 * Makes `instance` call the provider's API as one connection: every request carries its
 * access token (from `client.getAccessToken`, cached), and a 401 refreshes the connection
 * once (shared with concurrent requests) and sends the request again, once. Returns a
 * function that removes both interceptors.
 */
export function useEvergreenToken(
  instance: AxiosInstance,
  client: EvergreenClient,
  connectionId: string,
  options: TokenOptions = {},
): () => void {
  const request = instance.interceptors.request.use(async (config: TrackedConfig) => {
    const { accessToken } = await client.getAccessToken(connectionId, options);
    config.headers.set("Authorization", `Bearer ${accessToken}`);
    config.evergreenToken = accessToken;
    return config;
  });
  const response = instance.interceptors.response.use(undefined, async (error: AxiosError) => {
    const config = error.config as TrackedConfig | undefined;
    if (error.response?.status !== 401 || !config?.evergreenToken || config.evergreenRetried) {
      throw error;
    }
    await client.refreshAccessToken(connectionId, config.evergreenToken);
    // The request interceptor runs again and attaches the new token.
    return instance.request({ ...config, evergreenRetried: true } as TrackedConfig);
  });
  return () => {
    instance.interceptors.request.eject(request);
    instance.interceptors.response.eject(response);
  };
}
