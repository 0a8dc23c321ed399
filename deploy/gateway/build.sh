#!/usr/bin/env bash
# Builds the grelay-gateway container image on this machine, with no base image and no registry.
#
#   deploy/gateway/build.sh [--binary PATH] [--tag NAME:TAG] [--no-strip]
#
#   --binary PATH  use this grelay-gateway binary (e.g. target/debug/grelay-gateway, as the
#                  tests do) instead of `cargo build --release -p grelay-gateway`
#   --tag NAME:TAG the image's name (default grelay-gateway:latest)
#   --no-strip     keep the binary's debug information (a debug build is ~100 MB with it)
#
# How (see deploy/README.md for why this and not debootstrap):
#   1. stage a root file system: the gateway binary (stripped of debug info), /usr/sbin/nft
#      for the egress NAT, and the shared libraries `ldd` names for the two (glibc's dynamic
#      binaries: no musl target is available here), the default configuration, a passwd
#      entry for uid 65532 and the state directory owned by it;
#   2. file capabilities cap_net_admin,cap_net_raw+ep on both binaries, so that a non-root
#      user gets exactly those two (bounded by the container's cap_add);
#   3. `tar --xattrs | docker import` as ROOTFS — import keeps security.capability, which a
#      Dockerfile COPY drops;
#   4. `docker build` of deploy/gateway/Dockerfile on top (user, volume, ports, health check,
#      entry point), then the temporary ROOTFS tag is removed.
# Needs: docker, ldd, setcap (libcap2-bin), tar, nft (nftables), strip (binutils).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=grelay-gateway:latest
binary=""
strip=1
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --no-strip) strip=0; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in docker ldd setcap tar; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing" >&2; exit 1; }
done
nft=$(command -v nft || true)
[ -n "$nft" ] || { echo "build.sh: nft is missing (apt-get install nftables)" >&2; exit 1; }

if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release --locked -p grelay-gateway --bin grelay-gateway)
    binary=${CARGO_TARGET_DIR:-$root/target}/release/grelay-gateway
fi
[ -x "$binary" ] || { echo "build.sh: $binary is not an executable" >&2; exit 1; }

stage=$(mktemp -d)
rootfs_tag="grelay-gateway-rootfs:$$-$(date +%s)"
cleanup() {
    rm -rf "$stage"
    docker image rm "$rootfs_tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT
chmod 0755 "$stage"

# Copies a file to the same path under the stage, following symbolic links.
put() {
    mkdir -p "$stage$(dirname "$1")"
    cp -L "$1" "$stage$1"
}
# Copies the shared libraries and the loader that ldd names for a binary.
put_libs() {
    ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do put "$lib"; done
}

install -D -m 0755 "$binary" "$stage/usr/bin/grelay-gateway"
if [ "$strip" = 1 ] && command -v strip >/dev/null; then
    strip --strip-debug "$stage/usr/bin/grelay-gateway"
fi
install -D -m 0755 "$nft" "$stage/usr/sbin/nft"
put_libs "$binary"
put_libs "$nft"

install -D -m 0644 "$here/gateway.toml" "$stage/etc/grelay/gateway.toml"
printf 'root:x:0:0:root:/root:/sbin/nologin\ngrelay:x:65532:65532:grelay:/var/lib/grelay:/sbin/nologin\n' \
    >"$stage/etc/passwd"
printf 'root:x:0:\ngrelay:x:65532:\n' >"$stage/etc/group"
mkdir -p "$stage/var/lib/grelay" "$stage/tmp"
chmod 0700 "$stage/var/lib/grelay"
chmod 1777 "$stage/tmp"
chown 65532:65532 "$stage/var/lib/grelay"

setcap cap_net_admin,cap_net_raw+ep "$stage/usr/bin/grelay-gateway"
setcap cap_net_admin+ep "$stage/usr/sbin/nft"

tar --xattrs --xattrs-include='security.capability' --numeric-owner -C "$stage" -cf - . \
    | docker import --message "grelay-gateway root file system" - "$rootfs_tag" >/dev/null
# The legacy builder (no buildx here) is enough for a Dockerfile without RUN; its deprecation
# notice is shown only when the build fails.
if ! log=$(DOCKER_BUILDKIT=0 docker build --build-arg "ROOTFS=$rootfs_tag" -t "$tag" - \
    <"$here/Dockerfile" 2>&1); then
    echo "$log" >&2
    exit 1
fi
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "built $tag: $((size / 1024)) KiB ($(basename "$binary") from $binary)"
