# Gatewarden: build with the Swift toolchain, run on a slim Debian with only the runtime libraries.
#
#   docker build -t gatewarden .
#   docker run --rm --network host --privileged -v /sys/fs/bpf:/sys/fs/bpf -v gatewarden-state:/var/lib/gatewarden gatewarden serve
#
# Capabilities: loading and reading BPF needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN on kernels
# before 5.8); attaching XDP and changing nftables needs CAP_NET_ADMIN; --netns needs CAP_SYS_ADMIN
# (setns) and /run/netns mounted in. Run with the host network (the interfaces and tables are the
# host's) and the host's bpffs at /sys/fs/bpf (the pins must outlive the container).
# Mount it on the host first if it is not (`mount -t bpf bpf /sys/fs/bpf`, or any `gatewarden load`
# on the host): a bpffs that `load` mounts inside the container lives only as long as the container,
# and its pins with it.
# `--privileged` grants all of these; a tighter set is:
#   --cap-add BPF --cap-add PERFMON --cap-add NET_ADMIN --cap-add SYS_ADMIN

FROM swift:6.1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libbpf-dev libnftables-dev libmicrohttpd-dev libelf-dev zlib1g-dev libcrypt-dev linux-libc-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so source edits do not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY . .
RUN swift build -c release --product gatewarden --static-swift-stdlib \
 && install -D .build/release/gatewarden /out/gatewarden

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libbpf1 libnftables1 libmicrohttpd12 libelf1 zlib1g libcrypt1 libsqlite3-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/gatewarden /usr/local/bin/gatewarden
# The enforce loop's ban store: keep it on a volume, or recreating the container forgets every ban
# and its history (the kernel keeps the bans it holds until they expire).
VOLUME /var/lib/gatewarden
EXPOSE 10099
ENTRYPOINT ["/usr/local/bin/gatewarden"]
CMD ["serve"]
