// `npm run openapi`: writes the api's OpenAPI document where the SDK reads it (argv[2]).
import { writeFileSync } from "node:fs";
import { apiDocument } from "./openapi";

const [, , path] = process.argv;
if (!path) throw new Error("usage: write-openapi.ts <output path>");
writeFileSync(path, `${JSON.stringify(apiDocument(), null, 2)}\n`);
