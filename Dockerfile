# The MapReduce image: mrcoordinator, mrworker, mrsequential and mrstatus on
# Debian's slim base, run as a user without privileges.
#
# The binaries are built on the host first, stripped into target/image/
# (a copy of the Rust toolchain in the image would weigh a gigabyte):
#
#   bash deploy/image.sh            # cargo build --release, strip, podman/docker build
#
# or by hand: cargo build --release, copy the four binaries into target/image/,
# then `podman build -t mapreduce:latest .`. Nothing secret is in the image:
# the join secret and S3 credentials come from the environment at run time.
FROM debian:bookworm-slim

# The S3 client trusts the system's certificate authorities (for https
# endpoints); a base that has them already skips the download.
RUN if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update && apt-get install -y --no-install-recommends ca-certificates \
        && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /work mapreduce \
    && mkdir -p /work && chown mapreduce:mapreduce /work

COPY target/image/mrcoordinator target/image/mrworker target/image/mrsequential target/image/mrstatus /usr/local/bin/

USER 10001:10001
WORKDIR /work
# The coordinator's RPC port and its status, metrics and probe port, as the
# manifests in deploy/kubernetes use them.
EXPOSE 7878 8080
ENV MR_LOG_FORMAT=json
ENTRYPOINT []
CMD ["mrcoordinator", "--help"]
