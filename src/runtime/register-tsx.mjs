// Loaded with `--import` into worker threads started from `.ts` modules (worker-module.ts):
// before Node 22.22, tsx's hooks registered on the main thread do not reach worker threads,
// so each worker registers its own.
import { register } from "tsx/esm/api";

register();
