/**
 * How a module starts a worker thread on one of its siblings, whether it runs from source under
 * tsx or vitest (`.ts`: the worker registers tsx itself, see register-tsx.mjs and STACK-NOTES)
 * or from a build (`.js`).
 */
export interface WorkerModule {
  url: URL;
  execArgv?: string[];
}

/** `entry` is relative to `callerUrl` (the caller's `import.meta.url`): `ts` when it runs from source, `built` from a build. */
export function workerModule(callerUrl: string, entry: { ts: string; built: string }): WorkerModule {
  if (callerUrl.endsWith(".ts")) {
    return { url: new URL(entry.ts, callerUrl), execArgv: ["--import", new URL("./register-tsx.mjs", import.meta.url).href] };
  }
  return { url: new URL(entry.built, callerUrl) };
}
