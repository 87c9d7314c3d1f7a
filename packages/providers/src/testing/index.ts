export {
  type GrantOptions,
  type GrantSnapshot,
  type IssuedGrant,
  MockProvider,
  type MockProviderOptions,
  type ReceivedRequest,
  type ScriptedAnswer,
  type ScriptTarget,
  startMockProvider,
  type TokenLapse,
  type TokenReuse,
} from "./mock-provider";
