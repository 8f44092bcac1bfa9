/**
 * The operator's side of transactions (`jade txns list|get|abort`, `admin.txns.*`): records are
 * in KV, so any gateway serves these, with or without a coordinator.
 *
 * An abort is the recovery actor's abort, brought forward: the record's CAS from `preparing` to
 * `aborted` (so of the operator and the gateway deciding at once exactly one wins; a gateway
 * that loses tells its client `conflict`), then at once what recovery would do after the
 * deadline and grace: abort markers, locks released, record done (TxnRecovery.finish).
 */
import { parse } from "../../runtime/checks.ts";
import { errorMessage, ErrorCode, JadeError, notFound, unavailable } from "../../runtime/errors.ts";
import { AdminOp, type TxnOp } from "../../runtime/subjects.ts";
import { TxnIdRequest, TxnListRequest, TxnState, type TxnList, type TxnRecord } from "../../runtime/txn-schemas.ts";
import type { TxnRecords } from "./records.ts";
import type { TxnRecovery } from "./recovery.ts";

/** The reason an operator's abort writes in the record (and the gateway then tells its client). */
export const operatorAbortReason = "aborted by an operator";

export class TxnAdmin {
  readonly #records: TxnRecords;
  readonly #recovery: TxnRecovery;

  constructor(records: TxnRecords, recovery: TxnRecovery) {
    this.#records = records;
    this.#recovery = recovery;
  }

  handle(op: TxnOp, body: unknown): Promise<unknown> {
    switch (op) {
      case AdminOp.TxnsList:
        return this.#list(parse(TxnListRequest, body));
      case AdminOp.TxnsGet:
        return this.#get(parse(TxnIdRequest, body).id);
      case AdminOp.TxnsAbort:
        return this.#abort(parse(TxnIdRequest, body).id);
    }
  }

  async #list(request: ReturnType<typeof TxnListRequest.parse>): Promise<TxnList> {
    const match = (r: TxnRecord) => (request.collection === undefined || r.collection === request.collection) && (request.state === undefined || r.state === request.state);
    const { records, more } = await this.#records.newest({ openOnly: request.open, limit: request.limit, match });
    return { txns: records, more };
  }

  async #get(id: string): Promise<TxnRecord> {
    const record = await this.#records.get(id);
    if (!record) throw notFound(`no record of transaction ${id} (records are kept a day after they are done)`);
    return record;
  }

  /** Aborted (now, or before: answered as it is), finished at once; a committed one is refused. */
  async #abort(id: string): Promise<TxnRecord> {
    const state = await this.#records.decide(id, TxnState.Aborted, { reason: operatorAbortReason });
    if (state === TxnState.Committed) {
      throw new JadeError(ErrorCode.Conflict, `transaction ${id} is committed: it cannot be aborted`, { details: { txn: id, state } });
    }
    try {
      return (await this.#recovery.finish(id, operatorAbortReason)) ?? (await this.#get(id));
    } catch (err) {
      throw unavailable(`transaction ${id} is aborted, but finishing it failed (${errorMessage(err)}): recovery finishes it after its deadline`, err);
    }
  }
}
