# JadeVectorDB node image. NATS runs in its own containers (see compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production JADE_LOG_LEVEL=info
# A fixed mmap threshold: glibc's dynamic one left freed buffers in the heap (resident
# growth at 300,000 × 128-d: 387 MB by default, 336 MB with this; docs/performance.md).
ENV MALLOC_MMAP_THRESHOLD_=131072
# openssl: the compose `secrets` service makes the cluster's certificates with it.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# usearch and msgpackr ship prebuilt linux-x64 binaries; no compiler is needed.
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY tsconfig.json ./
COPY deploy/compose ./deploy/compose
VOLUME ["/data"]
ENTRYPOINT ["node", "bin/jade.mjs"]
CMD ["start", "--nats", "nats://nats1:4222", "--data", "/data"]
