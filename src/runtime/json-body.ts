/**
 * Request bodies of the JSON API (the gateway, and the coordinator's admin subjects):
 * one UTF-8 JSON value, an empty body meaning `{}`. Bytes that are not UTF-8 are
 * refused rather than decoded with U+FFFD in their place, so what a handler sees is
 * exactly what was sent.
 */
import { errorMessage, invalidArgument } from "./errors.ts";
import { clip } from "./text.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

export function decodeJsonBody(data: Uint8Array): unknown {
  if (data.byteLength === 0) return {};
  let text: string;
  try {
    text = decoder.decode(data);
  } catch {
    throw invalidArgument("the body is not UTF-8 text");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`malformed JSON: ${clip(errorMessage(err), 160)}`);
  }
}
