# Prosody from Debian 12's packages: the version addinbot's test suite runs against.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        prosody lua-unbound ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o prosody -g prosody /run/prosody
COPY --chmod=0755 prosody-entrypoint.sh /usr/local/bin/prosody-entrypoint
EXPOSE 5222
ENTRYPOINT ["/usr/local/bin/prosody-entrypoint"]
