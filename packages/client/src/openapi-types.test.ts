import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DOCUMENT_PATH, renderOpenApiTypes, TYPES_PATH } from "../scripts/openapi-types.js";

// The chain that keeps the SDK true to the api: apps/api's openapi.test.ts fails when the
// served document differs from openapi.json; this test fails when the generated types
// differ from openapi.json; and tsc fails when the SDK's methods no longer fit the types.
describe("generated types", () => {
  it("are what openapi.json generates (npm run openapi writes both)", () => {
    const document = JSON.parse(readFileSync(DOCUMENT_PATH, "utf8"));
    expect(readFileSync(TYPES_PATH, "utf8")).toBe(renderOpenApiTypes(document));
  });
});
