# syntax=docker/dockerfile:1
#
# One image per inference engine, each with azure-openai-proxy in front of the engine
# (docs/containers.md):
#
#   docker build --target vllm    -t azure-openai-proxy:vllm .
#   docker build --target tgi     -t azure-openai-proxy:tgi .
#   docker build --target sglang  -t azure-openai-proxy:sglang .
#   docker build --target tei-cpu -t azure-openai-proxy:tei-cpu .
#   docker build --target tei-gpu -t azure-openai-proxy:tei-gpu .
#
# The engines' official images are pinned below; another version is a build argument away, e.g.
#   --build-arg VLLM_IMAGE=vllm/vllm-openai:v0.11.0
# (the entrypoints use only the engines' long-standing command-line flags).
#
# glibc: the proxy is built on Debian bullseye (glibc 2.31), so it runs on every engine image,
# whose glibc is newer or the same: Ubuntu 22.04 (2.35: TGI, vLLM, SGLang), Debian bookworm (2.36:
# TEI CPU), Ubuntu 24.04 (2.39: TEI GPU), and Ubuntu 20.04 (2.31) under older engine versions. A
# static musl build would not depend on glibc at all, but musl's allocator is markedly slower for
# a multi-threaded server, and the proxy sits on every request's path.

ARG RUST_IMAGE=rust:1.94.1-bullseye
ARG TGI_IMAGE=ghcr.io/huggingface/text-generation-inference:3.3.6
ARG VLLM_IMAGE=vllm/vllm-openai:v0.13.0
ARG SGLANG_IMAGE=lmsysorg/sglang:v0.5.6.post1
ARG TEI_CPU_IMAGE=ghcr.io/huggingface/text-embeddings-inference:cpu-1.9.3
# 1.9.3 is TEI's image for Ampere 8.0 (A100); others: turing-1.9.3 (T4), 86-1.9.3 (A10),
# 89-1.9.3 (L4, L40S), hopper-1.9.3 (H100), cuda-1.9.3 (all of them, chosen at start).
ARG TEI_GPU_IMAGE=ghcr.io/huggingface/text-embeddings-inference:1.9.3

# ---- build: the release binary, profile-guided (scripts/build-pgo.sh: an instrumented build
# answers a few seconds of mock traffic, then the release build uses that profile; a fifth to a
# third more requests per second). `--build-arg PGO=0` makes a plain `cargo build --release`,
# in a third of the time. The dependencies of the plain build (also what the training driver
# is built with) are in their own layer, rebuilt only when Cargo.* change.
FROM ${RUST_IMAGE} AS build
ARG PGO=1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY examples/pgo_train.rs ./examples/
COPY scripts/build-pgo.sh ./scripts/
# touch: the sources may be older than the placeholder build, which cargo would then keep.
RUN touch src/main.rs src/lib.rs \
    && if [ "$PGO" = 0 ]; then \
         cargo build --release --locked && bin=target/release/azure-openai-proxy; \
       else \
         bin=$(scripts/build-pgo.sh); \
       fi \
    && install -D -m 0755 "$bin" /out/azure-openai-proxy \
    && strip /out/azure-openai-proxy \
    && /out/azure-openai-proxy --version
COPY LICENSE-APACHE LICENSE-MIT /out/licenses/

# ---- the engine images ----------------------------------------------------------------------
# Each keeps its engine image's user (root): the engines write their model caches (/data,
# ~/.cache/huggingface) and reach the GPUs as their images expect. The entrypoint runs the
# proxy, the only process reachable from outside, as `nobody` (PROXY_USER) with no capability but
# binding port 80. Images run with `--user` need PORT >= 1024 and writable engine caches.
# ENGINE_PORT is the engine's internal port (127.0.0.1 only); PORT is the proxy's public port.

FROM ${TGI_IMAGE} AS tgi
COPY --from=build /out/azure-openai-proxy /usr/local/bin/azure-openai-proxy
COPY --from=build /out/licenses/ /usr/share/doc/azure-openai-proxy/
COPY --chmod=0755 tgi-entrypoint.sh /usr/local/bin/azure-openai-proxy-entrypoint
ENV PORT=80 \
    ENGINE_PORT=8080 \
    ENGINE_LDCONFIG=1
EXPOSE 80
ENTRYPOINT ["/usr/local/bin/azure-openai-proxy-entrypoint"]

FROM ${VLLM_IMAGE} AS vllm
COPY --from=build /out/azure-openai-proxy /usr/local/bin/azure-openai-proxy
COPY --from=build /out/licenses/ /usr/share/doc/azure-openai-proxy/
COPY --chmod=0755 vllm-entrypoint.sh /usr/local/bin/azure-openai-proxy-entrypoint
ENV PORT=80 \
    ENGINE_PORT=8080
EXPOSE 80
ENTRYPOINT ["/usr/local/bin/azure-openai-proxy-entrypoint"]
# ENTRYPOINT resets the base image's CMD; vLLM's had none either.
CMD []

FROM ${SGLANG_IMAGE} AS sglang
COPY --from=build /out/azure-openai-proxy /usr/local/bin/azure-openai-proxy
COPY --from=build /out/licenses/ /usr/share/doc/azure-openai-proxy/
COPY --chmod=0755 sglang-entrypoint.sh /usr/local/bin/azure-openai-proxy-entrypoint
ENV PORT=80 \
    ENGINE_PORT=8080
EXPOSE 80
ENTRYPOINT ["/usr/local/bin/azure-openai-proxy-entrypoint"]
CMD []

FROM ${TEI_CPU_IMAGE} AS tei-cpu
COPY --from=build /out/azure-openai-proxy /usr/local/bin/azure-openai-proxy
COPY --from=build /out/licenses/ /usr/share/doc/azure-openai-proxy/
COPY --chmod=0755 tei-entrypoint.sh /usr/local/bin/azure-openai-proxy-entrypoint
ENV PORT=80 \
    ENGINE_PORT=8080
EXPOSE 80
ENTRYPOINT ["/usr/local/bin/azure-openai-proxy-entrypoint"]
# As TEI's image: JSON logs unless other arguments are given.
CMD ["--json-output"]

FROM ${TEI_GPU_IMAGE} AS tei-gpu
COPY --from=build /out/azure-openai-proxy /usr/local/bin/azure-openai-proxy
COPY --from=build /out/licenses/ /usr/share/doc/azure-openai-proxy/
COPY --chmod=0755 tei-entrypoint.sh /usr/local/bin/azure-openai-proxy-entrypoint
# TEI's GPU images start the router through their /entrypoint.sh, which sets up CUDA
# compatibility libraries (and, in the cuda-* image, picks the binary for the GPU).
ENV PORT=80 \
    ENGINE_PORT=8080 \
    ENGINE_CMD=/entrypoint.sh
EXPOSE 80
ENTRYPOINT ["/usr/local/bin/azure-openai-proxy-entrypoint"]
CMD ["--json-output"]
