import { defineConfig } from "vitest/config";

// Integration tests start real nats-servers, nodes and worker threads: on a
// 2-core machine, run few files at once and give slow operations room.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: "forks",
    reporters: ["default"],
  },
});
