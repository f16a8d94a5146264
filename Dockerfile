# miemu container image: a statically linked miemu in an otherwise empty image.
#
#   docker build -t miemu .                          # build stage + runtime stage
#   docker build --build-arg RUST_VERSION=1.88 -t miemu .
#
# Stage `build` compiles a fully static glibc binary (no musl target needed):
# `-C target-feature=+crt-static` for the host's *-unknown-linux-gnu triple, with
# an explicit --target so that build scripts and proc-macros stay dynamic.
# aws-lc-sys (the C crypto under aws-lc-rs) is compiled by its cc-based builder
# and linked statically with it.
#
# Stage `runtime` takes only /out from `build`. A named build context called
# `build` replaces that stage (BuildKit and buildah both let a named context
# override a stage of the same name), so a binary built elsewhere can be packed
# into exactly this runtime stage without running the Rust stage:
#
#   docker build --build-context build=DIR --target runtime -t miemu .
#   podman build --format docker --build-context build=DIR --target runtime -t miemu .
#
# where DIR/out/usr/local/bin/miemu is the static binary and DIR/out/var/lib/miemu
# and DIR/out/run/miemu are empty directories (scripts/container-test.sh does this).
# podman/buildah needs `--format docker`: the OCI format drops HEALTHCHECK.

# Default: the toolchain the static recipe was verified with (Debian 12 host,
# glibc 2.36, as in the bookworm image). The crate itself needs >= 1.88.
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN set -eux; \
    target="$(rustc -vV | sed -n 's/^host: //p')"; \
    RUSTFLAGS='-C target-feature=+crt-static' \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin miemu --target "$target" --target-dir /tmp/target; \
    mkdir -p /out/usr/local/bin /out/var/lib/miemu /out/run/miemu; \
    cp "/tmp/target/$target/release/miemu" /out/usr/local/bin/miemu; \
    if ldd /out/usr/local/bin/miemu 2>/dev/null | grep -q '=>'; then \
        echo 'miemu is not statically linked' >&2; exit 1; \
    fi; \
    /out/usr/local/bin/miemu --version

FROM scratch AS runtime
# The binary is owned by root and not writable by the service user.
COPY --from=build /out/usr/local/bin/miemu /usr/local/bin/miemu
# Writable state for the unprivileged user: the signing key and the env files.
# A fresh named volume mounted on either path takes this ownership.
COPY --from=build --chown=65532:65532 /out/var/lib/miemu/ /var/lib/miemu/
COPY --from=build --chown=65532:65532 /out/run/miemu/ /run/miemu/
ENV MIEMU_KEY_DIR=/var/lib/miemu
VOLUME ["/var/lib/miemu"]
USER 65532:65532
EXPOSE 42356
# No shell or curl in the image: miemu checks its own /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/miemu", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/miemu"]
# Explicitly reachable from the neighbouring containers; miemu's own default
# outside a container stays 127.0.0.1:42356.
CMD ["serve", "--listen", "0.0.0.0:42356", "--key-dir", "/var/lib/miemu"]
