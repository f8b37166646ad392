#!/usr/bin/env bash
# Runs the pinned forge on this Foundry project with the pinned solc, offline.
# Usage: contracts-bindings/forge.sh build | test [args...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="$HERE/../.tools"
"$HERE/../testnet/install-tools"
cd "$HERE"
cmd="$1"; shift
exec "$TOOLS/bin/forge" "$cmd" --use "$TOOLS/bin/solc" --offline "$@"
