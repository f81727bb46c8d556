#!/usr/bin/env bash
# Prints the commands of the README's fenced blocks marked `<!-- commands: NAME ... -->` (the line
# just before the block), one per line, so what is tested is what the README says:
#
#   tools/readme-commands.sh setup [README]   the two set-up commands (tools/run.sh, tools/test.sh)
#   tools/readme-commands.sh try [README]     the commands to try once it serves
#
# Used by tests/integration/readme_test.cpp and tools/debian-check.sh. Exit 1 when no such block.
set -euo pipefail
name=${1:?usage: readme-commands.sh NAME [README]}
readme=${2:-$(dirname "$0")/../README.md}
awk -v name="$name" '
  $0 ~ "^<!-- commands: " name "[ >]" { armed = 1; next }
  armed && /^```/ { armed = 0; inside = 1; found = 1; next }
  inside && /^```/ { inside = 0; next }
  inside && NF { print }
  armed { armed = 0 }
  END { exit found ? 0 : 1 }
' "$readme"
