export { type AllowlistEntry, EgressConfigError, parseEgressAllowlist } from "./allowlist";
export {
  DEFAULT_MAX_RESPONSE_BYTES,
  EgressClient,
  type EgressClientOptions,
  type EgressFailure,
  type EgressFailureCode,
  type EgressRequest,
  type EgressResponse,
  type SendOptions,
} from "./egress-client";
export { EgressPolicy, type EgressPolicyOptions } from "./egress-policy";
export type { ResolveAll } from "./guarded-agents";
