#!/usr/bin/env bash
# Installs the Debian 12 packages Playbook needs to build and run (tools/run.sh), and with
# --with-test-tools also to test (tools/test.sh); only the missing ones.
# Uses sudo when not root. Safe to run again: it does nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost-dev                      # Asio + Beast 1.74 (header-only)
  librocksdb-dev                    # embedded storage
  libfaiss-dev liblapack-dev libopenblas0-openmp  # vector index; faiss's link needs lapack, openblas is the fast BLAS
  libspdlog-dev libfmt-dev          # logging
  nlohmann-json3-dev                # JSON
  libssl-dev                        # TLS (Beast over OpenSSL)
  libtomlplusplus-dev               # config
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and micro benchmarks
  procps                            # pgrep/kill used by the scripts
  curl                              # the README's /healthz and /metrics lines (a minimal Debian has none)
  file                              # tools/package.sh: cpack's dependency computation (dpkg-shlibdeps comes with build-essential)
)

# --with-test-tools: also what only the tests need (tools/test.sh passes it).
if [ "${1:-}" = "--with-test-tools" ]; then
  packages+=(chromium)  # headless browser for tests/integration/dashboard_test.cpp
  packages+=(openssl)   # the openssl command: tests/integration/tls_test.cpp makes its certificate
  packages+=(systemd)   # systemd-analyze: tests/package/check_deb.sh verifies the packaged unit
  # The sanitizer and fuzz build (docs/testing.md): clang 14, its sanitizer and
  # libFuzzer runtimes, and its OpenMP runtime (faiss's link interface names OpenMP).
  packages+=(clang libclang-rt-14-dev libomp-14-dev)
  # Node 18+ and npm for the TypeScript client's tests (clients/js/; Debian 12 ships Node 18). Only
  # when missing: a Node installed otherwise (e.g. NodeSource's, which bundles npm) is used as it is.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
  fi
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
