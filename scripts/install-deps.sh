#!/usr/bin/env bash
# Installs what registryd needs on Debian 12, skipping what is already there.
#   scripts/install-deps.sh          build and run: libssl-dev, libsqlite3-dev, libsystemd-dev
#   scripts/install-deps.sh --test   also the real clients the tests drive (skopeo, podman, buildah,
#                                    docker.io with its containerd and ctr, and ORAS from PyPI in
#                                    .build/oras-venv), Ceph's radosgw, the S3 server of the S3
#                                    driver's tests, PostgreSQL 15 for the metadata backend of
#                                    several instances, and nginx, their load balancer
#   scripts/install-deps.sh --bench  what scripts/bench.sh compares against and measures with:
#                                    docker-registry (CNCF distribution), nginx, wrk, ab, iperf3,
#                                    PostgreSQL 15 (--scale-out), Ceph radosgw and awscli (--s3)
#   scripts/install-deps.sh --soak   what scripts/soak.sh plots with: python3-matplotlib
#   scripts/install-deps.sh --link-order  what scripts/link-order/generate.py profiles with:
#                                    the benchmark's tools and valgrind
set -euo pipefail

packages=(libssl-dev libsqlite3-dev libsystemd-dev pkg-config)
case "${1:-}" in
--test) packages+=(skopeo podman buildah uidmap python3 python3-venv util-linux curl systemd docker.io containerd ceph-mon ceph-osd radosgw postgresql-15 nginx openssl) ;;
--soak) packages+=(python3 python3-matplotlib) ;;
--bench | --link-order)
    packages+=(docker-registry nginx wrk apache2-utils iperf3 openssl python3 python3-matplotlib skopeo util-linux curl systemd postgresql-15 ceph-mon ceph-osd radosgw awscli)
    [[ $1 == --link-order ]] && packages+=(valgrind binutils)
    ;;
esac

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The format check (scripts/test.sh) uses swift-format, which comes with the Swift
# toolchain (6.0 and later) rather than from Debian: say so plainly when it is missing.
if [[ ${1:-} == --test ]] && ! swift format --version >/dev/null 2>&1; then
    echo "swift-format is missing: it ships with the Swift toolchain (6.0 or later); install a full toolchain" >&2
    exit 1
fi

# ORAS, the OCI Registry As Storage SDK, is not packaged by Debian: it comes from PyPI into
# a virtual environment of the project's own (Debian's python3 refuses system-wide pip).
if [[ ${1:-} == --test ]]; then
    venv="$(cd "$(dirname "$0")/.." && pwd)/.build/oras-venv"
    if ! "$venv/bin/python" -c 'import oras' 2>/dev/null; then
        echo "installing: oras (PyPI) into $venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "oras==0.2.43"
    fi
fi
