/**
 * migrationMachine — one shard transfer, from plan to completion (docs/architecture.md, "Migrations").
 *
 * The public face of src/machines/migration/: the state chart and its documentation are in
 * machine.ts, the vocabulary in types.ts, effects and helpers in setup.ts, the repeated state
 * shapes in steps.ts. Importers keep using this module.
 */
export {
  canCancel,
  canPause,
  isActive,
  isFinal,
  MigrationState,
  type CancelEvent,
  type CutoverOutput,
  type MigrationContext,
  type MigrationEvent,
  type MigrationInput,
  type MigrationStep,
  type PauseEvent,
  type PersistedMigration,
  type PersistParams,
  type PrepareOutput,
  type ReportErrorParams,
  type ResumeEvent,
  type RollbackOutput,
  type SourceDownEvent,
  type StartEvent,
  type StepInput,
  type TargetDownEvent,
  type TargetProgressEvent,
  type TimerInput,
  type WatchTargetInput,
  type WatchTargetSentEvent,
} from "./migration/types.ts";
export { migrationInputProblems, migrationRetryDelay, persistTo, progressSamplesMax, resumeOptions } from "./migration/setup.ts";
export {
  migrationMachine,
  migrationStateOf,
  type MigrationActorRef,
  type MigrationMachine,
  type MigrationSnapshot,
} from "./migration/machine.ts";
