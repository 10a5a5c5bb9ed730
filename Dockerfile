# jobrunner container image: the daemon on Node.js 22 LTS, run as a sidecar beside the app's workers.
#   docker build -t jobrunner .
#   docker run --rm -p 2114:2114 -v "$PWD/jobs.yaml:/etc/jobrunner/jobs.yaml:ro" jobrunner
#   docker run --rm jobrunner serve -c config/memory.yaml      (the memory demo, no mount)
# Without a file at /etc/jobrunner/jobs.yaml the image exits 2 saying so, rather than run a demo in a sidecar.
# Python, PHP or Go workers: extend this image (docs/docker.md). scripts/docker-build-check.sh repeats these
# build steps without a Docker engine and lints this file; keep the two in step.

# ---- build: compile TypeScript with the dev dependencies ----
FROM node:22.23.2-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build

# ---- runtime: production dependencies, compiled code, schemas, example configs and workers ----
FROM node:22.23.2-bookworm-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jobrunner" \
      org.opencontainers.image.description="RoadRunner-style jobs pipelines on AMQP 0-9-1, AMQP 1.0 and memory, served to long-lived workers in any language over stdin/stdout JSON frames" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/node:22.23.2-bookworm-slim"

# tini is PID 1: it reaps exited worker processes and forwards SIGTERM to jobrunner, which then drains
# (without -g, so workers get jobrunner's `stop` frame rather than a signal of their own).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini='0.19.0-1*' \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    JOBRUNNER_CONFIG=/etc/jobrunner/jobs.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY schemas ./schemas
COPY config ./config
COPY examples ./examples
# `jobrunner` on PATH, whatever the compiled entry's file mode
RUN printf '#!/bin/sh\nexec node /app/dist/cli/main.js "$@"\n' > /usr/local/bin/jobrunner \
 && chmod 0755 /usr/local/bin/jobrunner

# the image's `node` user, by number so Kubernetes' runAsNonRoot can verify it
USER 1000:1000
EXPOSE 2114
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:2114/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "jobrunner"]
CMD ["serve"]
