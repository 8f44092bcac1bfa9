/**
 * A backup chain read back: the backup and its bases, oldest first, each manifest checked
 * against its own checksum (and the catalog's), and every file against the manifest.
 */
import { createHash } from "node:crypto";
import { BackupManifest, StoredManifest, manifestSha256 } from "../../runtime/backup-schemas.ts";
import { errorMessage, ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { ChainLink } from "./sources.ts";
import type { BackupFiles } from "./store.ts";

/** A chain is a full backup and the incremental ones on it: this many at most. */
const chainLengthMax = 1_000;

/** The backup `id` and its bases, oldest first; `filesOf` says where each one's files are. */
export async function loadChain(filesOf: (id: string) => BackupFiles, id: string, expectedSha256?: string): Promise<ChainLink[]> {
  const chain: ChainLink[] = [];
  let next: string | undefined = id;
  while (next !== undefined) {
    if (chain.length >= chainLengthMax) throw new JadeError(ErrorCode.Corrupt, `backup ${id}: its chain of bases is longer than ${chainLengthMax}`);
    const files = filesOf(next);
    const manifest = await readManifest(files, next, next === id ? expectedSha256 : undefined);
    chain.unshift({ manifest, files });
    next = manifest.base;
  }
  return chain;
}

export async function readManifest(files: BackupFiles, id: string, expectedSha256?: string): Promise<BackupManifest> {
  if (!(await files.exists("manifest.json"))) throw new JadeError(ErrorCode.NotFound, `backup ${id} has no manifest in ${files.where}: it was never completed, or is not there`);
  const chunks: Uint8Array[] = [];
  for await (const chunk of files.read("manifest.json")) chunks.push(chunk);
  const corrupt = (why: string) => new JadeError(ErrorCode.Corrupt, `${files.where}/manifest.json: ${why}`);
  let stored;
  try {
    stored = StoredManifest.parse(JSON.parse(Buffer.concat(chunks).toString("utf8")));
  } catch {
    throw corrupt("not a backup manifest");
  }
  const parsed = BackupManifest.safeParse(stored.manifest);
  if (!parsed.success) throw corrupt(`not a manifest this node reads (format ${JSON.stringify((stored.manifest as { format?: unknown })?.format)})`);
  const sha256 = manifestSha256(parsed.data);
  if (sha256 !== stored.sha256) throw corrupt(`checksum ${sha256}, expected ${stored.sha256}`);
  if (expectedSha256 !== undefined && sha256 !== expectedSha256) throw corrupt(`checksum ${sha256}, the catalog recorded ${expectedSha256}`);
  if (parsed.data.id !== id) throw corrupt(`it describes backup ${parsed.data.id}`);
  return parsed.data;
}

/** Reads every file of the chain against its manifest; the first that differs is named with the checksum expected. */
export async function verifyFiles(chain: readonly ChainLink[]): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const { manifest, files: store } of chain) {
    for (const file of manifest.files) {
      const hash = createHash("sha256");
      let size = 0;
      try {
        for await (const chunk of store.read(file.path)) {
          hash.update(chunk);
          size += chunk.byteLength;
        }
      } catch (err) {
        throw new JadeError(ErrorCode.Corrupt, `${store.where}/${file.path}: unreadable (${errorMessage(err)}); expected ${file.bytes} bytes with sha256 ${file.sha256}`);
      }
      const sha256 = hash.digest("hex");
      if (sha256 !== file.sha256 || size !== file.bytes) {
        throw new JadeError(ErrorCode.Corrupt, `${store.where}/${file.path}: sha256 ${sha256} (${size} bytes), expected ${file.sha256} (${file.bytes} bytes)`);
      }
      files++;
      bytes += size;
    }
  }
  return { files, bytes };
}
