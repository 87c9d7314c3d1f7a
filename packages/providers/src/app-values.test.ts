import { describe, expect, it } from "vitest";
import { appValuesOf, callbackAppValues, pickAppValues } from "./app-values";

describe("app values", () => {
  it("picks the definition's named values from metadata, nothing else", () => {
    const metadata = {
      instance_url: "https://acme.my.salesforce.com",
      plan: "pro",
      realmId: "123",
    };
    expect(appValuesOf("salesforce", metadata)).toEqual({
      instance_url: "https://acme.my.salesforce.com",
    });
    expect(appValuesOf("intuit", metadata)).toEqual({ realmId: "123" });
    expect(appValuesOf("google", metadata)).toBeNull();
    expect(appValuesOf("salesforce", null)).toBeNull();
    expect(appValuesOf("salesforce", ["instance_url"])).toBeNull();
  });

  it("keeps only printable strings of bounded length", () => {
    expect(
      pickAppValues(["a", "b", "c", "d", "e", "f"], {
        a: " trimmed ",
        b: 42,
        c: "line\nbreak",
        d: "x".repeat(2049),
        e: "",
        f: { nested: "object" },
      }),
    ).toEqual({ a: "trimmed" });
  });

  it("takes from a callback only the parameters the provider's definition names", () => {
    expect(
      callbackAppValues("zoho", { location: "eu", "accounts-server": "x", code: "c" }),
    ).toEqual({ location: "eu" });
    expect(callbackAppValues("zoho", { toString: "x", __proto__: "y" })).toBeNull();
  });
});
