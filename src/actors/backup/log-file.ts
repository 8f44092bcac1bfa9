/**
 * A log range as a backup file: `JADELOG1`, then per entry `length u32 | seq u64 | timeNs u64 |
 * data` (little-endian), the entry's bytes exactly as the shard log stored them. Encoded and
 * decoded as streams of chunks: a range never sits in memory whole.
 */
import type { LogMessage } from "../../nats/log-range.ts";

const magic = Buffer.from("JADELOG1", "ascii");
const recordHeaderBytes = 4 + 8 + 8;
/** Entries are gathered into chunks of about this size before they are written. */
const chunkBytes = 1024 * 1024;

export async function* encodeLogFile(entries: AsyncIterable<LogMessage>): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [magic];
  let size = magic.length;
  for await (const entry of entries) {
    const header = Buffer.alloc(recordHeaderBytes);
    header.writeUInt32LE(entry.data.byteLength, 0);
    header.writeBigUInt64LE(BigInt(entry.seq), 4);
    header.writeBigUInt64LE(entry.timeNs, 12);
    parts.push(header, entry.data);
    size += recordHeaderBytes + entry.data.byteLength;
    if (size >= chunkBytes) {
      yield Buffer.concat(parts);
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(parts);
}

/** A log file that is not one, or ends inside an entry. */
export class LogFileError extends Error {
  override readonly name = "LogFileError";
  readonly code = "log_file" as const;
}

export async function* decodeLogFile(chunks: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<LogMessage> {
  let buffer: Buffer = Buffer.alloc(0);
  let checkedMagic = false;
  for await (const chunk of chunks) {
    buffer = buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffer, chunk]);
    if (!checkedMagic) {
      if (buffer.length < magic.length) continue;
      if (!buffer.subarray(0, magic.length).equals(magic)) throw new LogFileError(`${file} is not a log file`);
      buffer = buffer.subarray(magic.length);
      checkedMagic = true;
    }
    let at = 0;
    while (buffer.length - at >= recordHeaderBytes) {
      const length = buffer.readUInt32LE(at);
      if (buffer.length - at < recordHeaderBytes + length) break;
      const seq = Number(buffer.readBigUInt64LE(at + 4));
      const timeNs = buffer.readBigUInt64LE(at + 12);
      const start = at + recordHeaderBytes;
      yield { seq, timeNs, data: buffer.subarray(start, start + length) };
      at = start + length;
    }
    buffer = buffer.subarray(at);
  }
  if (!checkedMagic || buffer.length > 0) throw new LogFileError(`${file} ends inside an entry`);
}
