/**
 * transactionMachine — one transaction from locks to release (decision 013).
 *
 * The public face of src/machines/transaction/: the state chart and its documentation are in
 * machine.ts, the vocabulary in types.ts, effects, guards and the retried-step builder in setup.ts.
 */
export {
  InDoubt,
  isUndecided,
  Outcome,
  TransactionState,
  type DecideInput,
  type DecideOutput,
  type LocksInput,
  type MarkersInput,
  type MarkersOutput,
  type PrepareOutput,
  type ReleaseInput,
  type ReportErrorParams,
  type StepInput,
  type TransactionContext,
  type TransactionInput,
  type TransactionOutput,
  type TransactionStep,
  type TxnPlan,
  type Vote,
  type VotesInput,
  type VotesOutput,
} from "./transaction/types.ts";
export { transactionInputProblems, transactionRetryDelay } from "./transaction/setup.ts";
export { transactionMachine, transactionOutput, transactionStateOf } from "./transaction/machine.ts";
