import { describe, expect, it } from "vitest";
import { checkReturnUrlEntry, isReturnUrlAllowed } from "./return-urls";

describe("isReturnUrlAllowed", () => {
  const allowlist = ["https://app.example.com/connect", "http://localhost:5173/"];

  it("admits the path and what lies under it, with the app's own query", () => {
    for (const url of [
      "https://app.example.com/connect",
      "https://app.example.com/connect/done?tab=integrations",
      "https://APP.example.com:443/connect/x/../done",
      "http://localhost:5173/anything/at/all",
    ]) {
      expect(isReturnUrlAllowed(allowlist, url), url).toBe(true);
    }
  });

  it("refuses other origins, siblings, climbs out of the path, and substring tricks", () => {
    for (const url of [
      "https://app.example.com/connected",
      "https://app.example.com/",
      "https://app.example.com/connect/../admin",
      "https://app.example.com/connect/%2e%2e/admin",
      "http://app.example.com/connect",
      "https://app.example.com:8443/connect",
      "https://app.example.com.evil.net/connect",
      "https://evil.net/connect?https://app.example.com/connect",
      "https://app.example.com@evil.net/connect",
      "https://user@app.example.com/connect",
      "javascript:alert(1)//https://app.example.com/connect",
      "//app.example.com/connect",
      "http://localhost:5174/",
      "not a url",
    ]) {
      expect(isReturnUrlAllowed(allowlist, url), url).toBe(false);
    }
  });

  it("admits nothing with an empty allowlist", () => {
    expect(isReturnUrlAllowed([], "https://app.example.com/connect")).toBe(false);
  });
});

describe("checkReturnUrlEntry", () => {
  it("normalizes origins and paths, and refuses queries, fragments, credentials and other schemes", () => {
    expect(checkReturnUrlEntry("https://App.Example.com")).toEqual({
      normalized: "https://app.example.com/",
    });
    expect(checkReturnUrlEntry("https://app.example.com:443/connect")).toEqual({
      normalized: "https://app.example.com/connect",
    });
    for (const entry of [
      "https://app.example.com/connect?x=1",
      "https://app.example.com/connect#top",
      "https://app.example.com/?",
      "https://u:p@app.example.com/",
      "myapp://callback",
      "ftp://app.example.com/",
    ]) {
      expect(checkReturnUrlEntry(entry), entry).toHaveProperty("problem");
    }
  });
});
