#!/usr/bin/env bash
# Builds the Debian package: playbook_<version>_<arch>.deb (e.g. playbook_0.1.0+1e59529_amd64.deb)
# with /usr/bin/playbookd, /usr/bin/playbook, /etc/playbook/playbook.toml (a conffile), the
# systemd unit playbook.service and the maintainer scripts that make the playbook user and
# /var/lib/playbook (packaging/; docs/operations.md, "Installing the Debian package").
#
#   tools/package.sh      installs what is missing, builds playbookd and playbook in build/ (the
#                         configuration run.sh and test.sh use) and writes the .deb into build/
#
# Prints the .deb's path last. Environment:
#   BUILD_DIR            the build directory (build)
#   OUT_DIR              where the .deb goes (BUILD_DIR)
#   PACKAGE_NO_BUILD=1   package the binaries already built in BUILD_DIR (the package test does)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
OUT_DIR=${OUT_DIR:-$BUILD_DIR}

if [ "${PACKAGE_NO_BUILD:-0}" != "1" ]; then
  tools/install-deps.sh
  tools/build.sh playbookd playbook
fi
[ -f "$BUILD_DIR/CPackConfig.cmake" ] || { echo "package: no $BUILD_DIR/CPackConfig.cmake: configure first (tools/build.sh)" >&2; exit 1; }
for b in playbookd playbook; do
  [ -x "$BUILD_DIR/bin/$b" ] || { echo "package: $BUILD_DIR/bin/$b is not built" >&2; exit 1; }
done

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# cpack stages under OUT_DIR/_CPack_Packages; dpkg-shlibdeps computes Depends from the binaries.
cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$OUT_DIR" >"$OUT_DIR/cpack.log" 2>&1 ||
  { cat "$OUT_DIR/cpack.log" >&2; echo "package: cpack failed" >&2; exit 1; }
deb=$(sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p' "$OUT_DIR/cpack.log" | tail -n 1)
[ -n "$deb" ] && [ -f "$deb" ] || { cat "$OUT_DIR/cpack.log" >&2; echo "package: cpack made no .deb" >&2; exit 1; }
echo "$deb"
