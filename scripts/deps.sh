#!/usr/bin/env bash
# Installs the Debian packages ward needs to build and test, calling apt-get
# only when something is missing, so that it is cheap to run every time.
set -euo pipefail

need=(
  gcc make cmake pkg-config clang libclang-rt-14-dev
  libjansson-dev libssl-dev libcmocka-dev
  curl openssl ca-certificates python3 python3-numpy
  python3-cryptography python3-jsonschema python3-requests python3-yaml
)
[ "${WARD_DEPS_EXTRA:-}" ] && need+=(${WARD_DEPS_EXTRA})

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
