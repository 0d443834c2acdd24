# syntax=docker/dockerfile:1
# storywire's image: `docker build -t storywire .`, then
#   docker run -p 9001:9001 -e JWT_SECRET=... -e API_KEY=... storywire
# Stage 1 builds dist/ with the dev dependencies of package-lock.json and keeps only the production ones;
# stage 2 holds what the npm package holds (package.json "files": test-pack/package.test.ts checks every
# path copied below is packaged) and those dependencies, and runs the package's bin as a non-root user.
# The uWS binary needs glibc (2.27 or newer) on Linux x64: a Debian base, not Alpine (musl).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (the build) needs the sources, copied next.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.browser.json ./
COPY scripts ./scripts
COPY src ./src
# The build, then what the package leaves out (source maps) and the dev dependencies.
RUN npm run build \
 && find dist -name '*.map' -delete \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY LICENSE README.md protocol.md channels.schema.json ./
COPY specs ./specs
# Every interface: the orchestrator's port mapping or network reaches the container from outside it.
ENV HOST=0.0.0.0 PORT=9001
# SIGTERM drains: readiness fails, the listen socket closes, and connections are closed with 4000 (reconnect
# now) in batches over DRAIN_MS; past SHUTDOWN_TIMEOUT_MS the process exits 1. Both fit `docker stop`'s
# default 10 s grace period; raise SHUTDOWN_TIMEOUT_MS with the orchestrator's (Kubernetes
# terminationGracePeriodSeconds, compose stop_grace_period) and keep DRAIN_MS under it.
ENV DRAIN_MS=5000 SHUTDOWN_TIMEOUT_MS=9000
STOPSIGNAL SIGTERM
# The files stay root's: the server cannot rewrite itself.
USER node
EXPOSE 9001
# /readyz: 200 "ready" (or "degraded": cluster mode without Redis, still serving), 503 while draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 9001) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1 and handles SIGTERM itself (src/main.ts); the flag is the one bin/storywire.js's shebang passes.
ENTRYPOINT ["node", "--max-semi-space-size=4", "bin/storywire.js"]
