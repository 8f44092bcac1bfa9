/** The version of JadeVectorDB this process runs (package.json): the OpenAPI document, diagnostics. */
import { readFileSync } from "node:fs";

export const jadeVersion: string = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
