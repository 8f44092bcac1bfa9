# JadeVectorDB node image. NATS runs in its own containers (see compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production JADE_LOG_LEVEL=info
# openssl: the compose `secrets` service makes the cluster's certificates with it.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# usearch, msgpackr and koffi ship prebuilt linux-x64 binaries; no compiler is needed.
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY tsconfig.json ./
COPY deploy/compose ./deploy/compose
VOLUME ["/data"]
ENTRYPOINT ["node", "bin/jade.mjs"]
CMD ["start", "--nats", "nats://nats1:4222", "--data", "/data"]
