#!/usr/bin/env bash
# Builds SeaweedFS's weed binary (the S3-compatible object store the origin
# tests run against) from the Go module proxy and caches it, because the
# build takes about 8 minutes on two cores. `go install` refuses the module
# (its go.mod has replace directives), so the module is downloaded, copied
# out of the read-only module cache and built in place.
#
# Prints the path of the binary. FERRY_CACHE (default ~/.cache/ferry) holds it.
set -euo pipefail
version=v0.0.0-20261109003541-7506e5f91cd6
cache=${FERRY_CACHE:-$HOME/.cache/ferry}
bin=$cache/weed-$version
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/weed-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "weed.sh: go mod download gave no directory" >&2; exit 1; }
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && go build -trimpath -ldflags=-s -o "$work/weed" ./weed) >&2
mv "$work/weed" "$bin"
echo "$bin"
