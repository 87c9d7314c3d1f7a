import type { EgressFailureCode } from "@evergreen/egress";
import type { RefreshResult } from "@evergreen/providers";

/**
 * What each egress failure does to the connection (and how a failed code exchange reports
 * it). The codes stored (and so shown to API
 * callers) are the egress client's generic ones, never a socket's: ECONNREFUSED against
 * ECONNRESET would tell a caller which internal ports are open.
 */
export const EGRESS_FAILURES = {
  timeout: {
    outcome: "transient",
    errorCode: "timeout",
    message: "the token endpoint did not answer in time",
  },
  unreachable: {
    outcome: "transient",
    errorCode: "unreachable",
    message: "the token endpoint could not be reached",
  },
  // Not a network blip: the endpoint answered, with something no token answer looks like.
  // As any unrecognised answer, retried with backoff a bounded number of times, then
  // `error`, so a hostile or broken endpoint is neither hammered nor retried forever.
  response_too_large: {
    outcome: "unknown",
    errorCode: "response_too_large",
    message: "the token endpoint's answer exceeded the size limit (64 KiB)",
  },
  // The request had reached the provider (it may have rotated the refresh token) when the
  // connection broke, before or during the answer.
  interrupted: {
    outcome: "transient",
    errorCode: "interrupted",
    message: "the connection to the token endpoint broke after the request was sent",
  },
  // The token URL leads to an internal address. For a name that depends on DNS at that
  // moment (a resolver sinkholing to 0.0.0.0 during an incident, split-horizon DNS), so it
  // is retried with backoff like a network failure rather than stopped for good: nothing
  // is sent while refused, and literal internal addresses are refused at registration.
  // Which address it resolved to stays out of the message.
  refused_by_policy: {
    outcome: "transient",
    errorCode: "egress_refused",
    message:
      "the token URL leads to a loopback, private or other internal address that EGRESS_ALLOWLIST does not cover",
  },
} as const satisfies Record<EgressFailureCode, RefreshResult>;
