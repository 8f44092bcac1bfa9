/** `jade txns list|get|abort`: transaction records for operators (`admin.txns.*`; docs/operations.md). */
import type { Command } from "commander";
import { limits } from "../../runtime/limits.ts";
import { TxnState, type TxnList, type TxnRecord } from "../../runtime/txn-schemas.ts";
import { keyValues, printJson, printLine, printNote, table, type Cell } from "../format.ts";
import { choice, integer, runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

const time = (ms: number | undefined) => (ms === undefined ? "" : new Date(ms).toISOString());

/** `committed`, or `preparing (open)` while markers, locks or the record's move to done are still due. */
const stateText = (r: TxnRecord) => (r.done ? r.state : `${r.state} (open)`);

/** From the start to the decision. */
const tookText = (r: TxnRecord) => (r.decidedAtMs === undefined ? "" : `${Math.max(0, r.decidedAtMs - r.createdAtMs)} ms`);

function printRecords(list: TxnList): void {
  if (list.txns.length === 0) return printLine("no transactions");
  const rows: Cell[][] = list.txns.map((r) => [r.id, r.collection, stateText(r), r.shards.join(","), r.node, time(r.createdAtMs), tookText(r), r.reason ?? ""]);
  printLine(table(["id", "collection", "state", "shards", "gateway", "created", "took", "reason"], rows));
  if (list.more) printNote(`more transactions than the ${list.txns.length} shown: narrow with --collection, --state or --open, or raise --limit`);
}

function printRecord(r: TxnRecord): void {
  const prepares = Object.entries(r.prepareSeqs).map(([shard, seq]) => `${shard}@${seq}`);
  printLine(
    keyValues([
      ["id", r.id],
      ["collection", `${r.collection} (uid ${r.uid})`],
      ["state", stateText(r)],
      ["gateway", r.node],
      ["shards", r.shards.join(", ")],
      ["prepares", prepares.join(", ") || "(none recorded)"],
      ["created", time(r.createdAtMs)],
      ["deadline", time(r.deadlineAtMs)],
      ["decided", r.decidedAtMs === undefined ? "" : `${time(r.decidedAtMs)} (${tookText(r)})`],
      ["reason", r.reason ?? ""],
    ]),
  );
}

export function registerTxnsCommands(program: Command): void {
  const txns = program.command("txns").description("transaction records: list, show, abort one left undecided");
  withClientOptions(
    txns
      .command("list")
      .description("transactions, newest first (records are kept a day after they are done)")
      .option("--collection <name>", "only this collection's")
      .addOption(choice("--state <state>", "only those in this state", Object.values(TxnState)))
      .option("--open", "only those not done yet (markers, locks or the record still due: what recovery looks at)")
      .option("--limit <n>", `at most this many (1–${limits.txnListMax})`, integer(1, limits.txnListMax), limits.txnListDefault),
  ).action((o: ClientOptions & { collection?: string; state?: TxnState; open?: boolean; limit: number }) =>
    runWithClient(o, async (client) => {
      const filters = { ...(o.collection === undefined ? {} : { collection: o.collection }), ...(o.state === undefined ? {} : { state: o.state }) };
      const list = await client.listTransactions({ ...filters, open: o.open === true, limit: o.limit });
      if (o.json) return printJson(list);
      printRecords(list);
    }),
  );
  withClientOptions(txns.command("get <id>").description("one transaction's record: state, shards, prepares, deadline, reason")).action((id: string, o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const record = await client.getTransaction(id);
      if (o.json) return printJson(record);
      printRecord(record);
    }),
  );
  withClientOptions(
    txns.command("abort <id>").description("abort a transaction not committed yet and finish it now (abort markers, locks released); a committed one is refused"),
  ).action((id: string, o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const record = await client.abortTransaction(id);
      if (o.json) return printJson(record);
      printLine(`transaction ${record.id}: ${stateText(record)}`);
      printRecord(record);
    }),
  );
}
