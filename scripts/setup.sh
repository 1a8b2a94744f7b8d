#!/usr/bin/env bash
# Prepares this machine for RVS: Debian packages (DPDK 22.11, clang for bindgen, lab tools),
# 2 MiB hugepages and the hugetlbfs mount. Idempotent; needs root. Used by demo.sh, test.sh
# and .ci/run, so a fresh machine needs nothing else.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (packages, hugepages and network namespaces need it)" >&2
  exit 1
fi

packages=(libdpdk-dev dpdk dpdk-dev clang libclang-dev linux-libc-dev pkg-config
          iproute2 ethtool iputils-ping curl python3 python3-venv procps
          nginx haproxy wrk nftables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# Schemathesis (from PyPI) checks the REST API against its OpenAPI document in the tests.
venv=/opt/rvs-venv
if [ ! -x "$venv/bin/st" ]; then
  echo "setup.sh: installing schemathesis into $venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check schemathesis
fi

# Hugepages: 512 x 2 MiB = 1 GiB (the demo uses 128 MiB, tests up to three processes at once).
want=512
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
total=$(cat "$hp/nr_hugepages")
free=$(cat "$hp/free_hugepages")
if [ "$free" -lt "$want" ]; then
  echo $((total + want - free)) > "$hp/nr_hugepages"
  free=$(cat "$hp/free_hugepages")
  if [ "$free" -lt "$want" ]; then
    echo "setup.sh: could only get $free free 2 MiB hugepages (wanted $want); memory is fragmented or short" >&2
    exit 1
  fi
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
echo "setup.sh: ready ($(cat "$hp/free_hugepages") free 2 MiB hugepages, DPDK $(pkg-config --modversion libdpdk))"
