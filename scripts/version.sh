#!/usr/bin/env bash
# Prints imgbake's version from git, in a form Debian accepts as a package
# version (digits first, no hyphen), which the binary reports too:
#   v1.2.0                  -> 1.2.0
#   v1.2.0-5-g1234abc       -> 1.2.0+5.g1234abc    (5 commits after the tag)
#   1234abc (no tag yet)    -> BASE~git183.g1234abc (BASE: the agent protocol's
#                              version in appliance/proto; 183 commits; ~ sorts
#                              it before the release BASE)
#   any of them -dirty      -> ... .dirty
# Outside a git checkout: BASE.
# Usage: scripts/version.sh [DESCRIBE COUNT]  (the arguments stand in for git, for tests)
set -euo pipefail
cd "$(dirname "$0")/.."

base=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' appliance/proto/messages.go)
[[ -n "$base" ]] || { echo "version.sh: no const Version in appliance/proto/messages.go" >&2; exit 1; }

if (($# == 2)); then
  describe=$1 count=$2
elif describe=$(git describe --tags --always --dirty 2>/dev/null); then
  count=$(git rev-list --count HEAD)
else
  echo "$base"
  exit 0
fi

dirty=""
if [[ "$describe" == *-dirty ]]; then
  dirty=".dirty"
  describe=${describe%-dirty}
fi
if [[ "$describe" =~ ^v?([0-9]+\.[0-9A-Za-z.+~]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
  echo "${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}$dirty"
elif [[ "$describe" =~ ^v?([0-9]+\.[0-9A-Za-z.+~]*)$ ]]; then
  echo "${BASH_REMATCH[1]}$dirty"
elif [[ "$describe" =~ ^[0-9a-f]+$ ]]; then
  echo "$base~git$count.g$describe$dirty"
else
  echo "version.sh: cannot make a version of git describe's \"$describe\" (tags are vX.Y.Z)" >&2
  exit 1
fi
