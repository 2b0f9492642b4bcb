#!/usr/bin/env bash
# Installs what registryd needs on Debian 12, skipping what is already there.
#   scripts/install-deps.sh          build and run: libssl-dev, libsqlite3-dev, libsystemd-dev
#   scripts/install-deps.sh --test   also the real clients the tests drive (skopeo, podman, buildah)
#                                    and Ceph's radosgw, the S3 server of the S3 driver's tests
#   scripts/install-deps.sh --bench  what scripts/bench.sh compares against and measures with:
#                                    docker-registry (CNCF distribution), nginx, wrk, ab, iperf3
#   scripts/install-deps.sh --link-order  what scripts/link-order/generate.py profiles with:
#                                    the benchmark's tools and valgrind
set -euo pipefail

packages=(libssl-dev libsqlite3-dev libsystemd-dev pkg-config)
case "${1:-}" in
--test) packages+=(skopeo podman buildah uidmap python3 util-linux curl systemd ceph-mon ceph-osd radosgw) ;;
--bench | --link-order)
    packages+=(docker-registry nginx wrk apache2-utils iperf3 openssl python3 python3-matplotlib skopeo util-linux curl systemd)
    [[ $1 == --link-order ]] && packages+=(valgrind binutils)
    ;;
esac

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "installing: ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
