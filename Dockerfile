# JadeVectorDB node image. NATS runs in its own containers (see compose.yml).
# The build stage compiles usearch's binding with an asynchronous save (native/usearch): g++,
# make and python3 for node-gyp, Node's own headers from the base image (/usr/local).
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY scripts/build-native.sh ./scripts/
COPY native/usearch/binding.gyp native/usearch/index.cpp ./native/usearch/
# msgpackr and koffi ship prebuilt linux-x64 binaries; postinstall builds native/usearch.
RUN npm_config_nodedir=/usr/local npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production JADE_LOG_LEVEL=info
# openssl: the compose `secrets` service makes the cluster's certificates with it.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/native/usearch/build/Release/jade_usearch.node ./native/usearch/build/Release/
COPY bin ./bin
COPY src ./src
COPY tsconfig.json ./
COPY deploy/compose ./deploy/compose
VOLUME ["/data"]
ENTRYPOINT ["node", "bin/jade.mjs"]
CMD ["start", "--nats", "nats://nats1:4222", "--data", "/data"]
