/**
 * coordinatorMachine — leader election through a KV lease (docs/architecture.md, "Control plane").
 *
 * The public face of src/machines/coordinator/: the state chart and its safety argument are
 * in machine.ts (the `leader` state in leader.ts), the vocabulary in types.ts, effects and
 * helpers in setup.ts. Importers keep using this module.
 */
export {
  CoordinatorState,
  isLeader,
  isRunning,
  LeaseError,
  leaseErrorCode,
  type AcquireInput,
  type AcquireOutput,
  type CoordinatorContext,
  type CoordinatorEffect,
  type CoordinatorEvent,
  type CoordinatorInput,
  type FencedEvent,
  type LeaseErrorCode,
  type LeaseObservedEvent,
  type NotifyStateParams,
  type ReconcileInput,
  type ReconcileSentEvent,
  type ReleaseInput,
  type RenewInput,
  type RenewOutput,
  type ReportErrorParams,
  type StopEvent,
} from "./coordinator/types.ts";
export { coordinatorInputProblems, leaseValidityMs } from "./coordinator/setup.ts";
export {
  coordinatorMachine,
  coordinatorStateOf,
  type CoordinatorActorRef,
  type CoordinatorMachine,
  type CoordinatorSnapshot,
} from "./coordinator/machine.ts";
