/**
 * The notice a replica publishes on `jade.applied.<collection>.<shard>` after it applies log
 * entries, and again while its graph absorbs (its fresh buffer shrinks): built and parsed here.
 * Writers wait on `seq` for consistency one|quorum|all, and pace on `seq` and `freshBytes`
 * (write/pace.ts). Any NATS client can publish on the subject, so a notice is checked before it
 * counts; one without `freshBytes` (a node from before it) counts as an empty fresh buffer.
 */
import { z } from "zod";
import { nodeIdPattern } from "./subjects.ts";

export const AppliedNotice = z.object({
  node: z.string().regex(nodeIdPattern),
  seq: z.number().int().min(0),
  freshBytes: z.number().int().min(0).optional(),
});
export type AppliedNotice = z.infer<typeof AppliedNotice>;

const decoder = new TextDecoder();

export function encodeAppliedNotice(notice: AppliedNotice): string {
  return JSON.stringify(notice);
}

/** The notice, or undefined when `data` is not one. */
export function parseAppliedNotice(data: Uint8Array): AppliedNotice | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
  const parsed = AppliedNotice.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}
