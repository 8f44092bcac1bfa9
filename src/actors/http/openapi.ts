/**
 * The OpenAPI 3.1 document of the REST mirror, generated from the route table and the
 * zod schemas the NATS API validates with (zod's JSON Schema is draft 2020-12, which is
 * OpenAPI 3.1's dialect). Nothing here is written by hand but the words.
 */
import { z } from "zod";
import { ErrorCode } from "../../runtime/errors.ts";
import { httpStatusOf } from "./status-codes.ts";
import type { HttpRoute } from "./routes.ts";

export const jsonMediaType = "application/json";
export const msgpackMediaType = "application/msgpack";

type JsonSchema = Record<string, unknown>;

/** A request schema as JSON Schema; custom types (vectors, payloads) carry their own in `.meta()`. */
function schemaOf(schema: z.ZodType, dropName: boolean): JsonSchema {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as JsonSchema;
  delete json.$schema;
  if (dropName) {
    // The path names the collection; a body may repeat it (it must then agree), so it is not required.
    delete (json.properties as JsonSchema | undefined)?.name;
    if (Array.isArray(json.required)) json.required = json.required.filter((key) => key !== "name");
  }
  return json;
}

const errorEnvelope: JsonSchema = {
  type: "object",
  required: ["ok", "error"],
  properties: {
    ok: { const: false },
    error: {
      type: "object",
      required: ["code", "message", "retryable"],
      properties: {
        code: { type: "string", enum: Object.values(ErrorCode) },
        message: { type: "string" },
        retryable: { type: "boolean", description: "the same request may succeed later" },
        details: { description: "structured details: validation issues with their paths, expected and got dimensions" },
      },
    },
  },
};

const okEnvelope: JsonSchema = {
  type: "object",
  required: ["ok", "result"],
  properties: { ok: { const: true }, result: { description: "the operation's result (docs/api.md)" } },
};

/** Every status an error code maps to, with the codes that produce it. */
function errorResponses(): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const [code, status] of Object.entries(httpStatusOf)) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus].map(([status, codes]) => [
      String(status),
      { description: codes.join(", "), content: { [jsonMediaType]: { schema: { $ref: "#/components/schemas/Error" } } } },
    ]),
  );
}

function operationOf(route: HttpRoute): Record<string, unknown> {
  const named = route.path.includes("{name}");
  const operation: Record<string, unknown> = {
    operationId: `${route.method.toLowerCase()}${route.path.replace(/[{}]/g, "").replace(/[/.-](\w)/g, (_, ch: string) => ch.toUpperCase())}`,
    summary: route.summary,
    description: `The REST form of the NATS request \`${route.subject}\`: the same body, validation, errors and reply.`,
    responses: {
      "200": { description: "`{ok: true, result}`", content: { [jsonMediaType]: { schema: okEnvelope }, [msgpackMediaType]: { schema: okEnvelope } } },
      ...errorResponses(),
    },
  };
  if (named) {
    operation.parameters = [{ name: "name", in: "path", required: true, description: "the collection", schema: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,64}$" } }];
  }
  if (route.request) {
    const json = schemaOf(route.request, route.nameInBody === true);
    operation.requestBody = {
      required: !route.nameInBody,
      content: { [jsonMediaType]: { schema: json }, [msgpackMediaType]: { schema: route.msgpackRequest ? { anyOf: [json, schemaOf(route.msgpackRequest, false)] } : json } },
    };
  }
  return operation;
}

export function openApiDocument(routes: readonly HttpRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) (paths[route.path] ??= {})[route.method.toLowerCase()] = operationOf(route);
  paths["/v1/events"] = {
    get: {
      operationId: "events",
      summary: "The dashboard's live feed (Server-Sent Events): `status` (the cluster status, every second), `migrations`, and `log` (every node's log lines)",
      responses: { "200": { description: "an event stream", content: { "text/event-stream": { schema: { type: "string" } } } }, "429": { description: "rate_limited: too many pages open on this node" } },
    },
  };
  paths["/healthz"] = { get: { operationId: "healthz", summary: "The process is alive", responses: { "200": { description: "alive" } } } };
  paths["/readyz"] = {
    get: {
      operationId: "readyz",
      summary: "Connected to NATS, and every replica placed on this node answers reads",
      responses: {
        "200": { description: "ready", content: { [jsonMediaType]: { schema: okEnvelope } } },
        "503": { description: "not ready, with the reasons", content: { [jsonMediaType]: { schema: { $ref: "#/components/schemas/Error" } } } },
      },
    },
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "JadeVectorDB",
      version,
      description:
        "The HTTP form of API v1. Every body and reply is the NATS API's (docs/api.md); a reply is `{ok:true,result}` or `{ok:false,error}`. " +
        "A node started with API keys required takes `Authorization: Bearer <key>` on every operation (docs/security.md); health, readiness and this document need none.",
    },
    paths,
    components: { schemas: { Error: errorEnvelope }, securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "an API key from `jade keys create`" } } },
    // Optional: a node without keys required takes requests without one ({}).
    security: [{ apiKey: [] }, {}],
  };
}
