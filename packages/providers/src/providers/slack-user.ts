import { defineProvider } from "../define-provider";
import { SLACK_ROTATION } from "./slack";

/**
 * A Slack user token (`xoxe.xoxp-`), with token rotation. Slack's install answer carries
 * the user's token in `authed_user`, beside the bot's; refreshing it with its own refresh
 * token answers at the top level. So a user token is its own connection, in an integration
 * of this provider, refreshed on its own schedule: bot and user tokens never share a grant
 * or a refresh (docs/adr/0020-slack-bot-and-user-tokens.md).
 */
export const slackUser = defineProvider({
  id: "slack_user",
  displayName: "Slack (user token)",
  ...SLACK_ROTATION,
  exchangeAnswerAt: "authed_user",
  authorization: {
    url: "https://slack.com/oauth/v2/authorize",
    // User scopes go in `user_scope`; `scope` is for the bot.
    scopeParam: "user_scope",
    scopeSeparator: ",",
  },
});
