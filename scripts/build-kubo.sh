#!/usr/bin/env bash
# Build Kubo from the Go module proxy into a cache directory that is reused when the binary is
# already there.
#
#   scripts/build-kubo.sh
#
# Kubo's go.mod carries `exclude` directives, so `go install …@version` refuses it. Instead the
# module is fetched with `go mod download`, copied somewhere writable and built as its own main
# module, exactly as its Makefile would.
#
# Cache: ${STAVE_CACHE_DIR:-<project>/.cache}/kubo/<version>/ipfs
# stdout: the path of the Kubo binary, on the last line. Progress goes to stderr.
#
# IPFS Cluster (github.com/ipfs-cluster/ipfs-cluster) is not built: the module proxy this project
# reaches refuses every version of it (403, "not available").
set -euo pipefail

KUBO_MODULE=github.com/ipfs/kubo
KUBO_VERSION=v0.42.0

PROJECT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${STAVE_CACHE_DIR:-$PROJECT_ROOT/.cache}

for arg in "$@"; do
    case "$arg" in
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-kubo: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

say() { echo "build-kubo: $*" >&2; }
die() { echo "build-kubo: error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 \
    || die "Go is not installed (need Go to build Kubo ${KUBO_VERSION}; see https://go.dev/dl/)"

# json_field NAME: the string value of NAME in `go mod download -json` output on stdin.
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"; }

# build_module MODULE VERSION PACKAGE OUTPUT
# Downloads MODULE@VERSION, copies it to a writable temporary directory, and builds PACKAGE there.
build_module() {
    local module=$1 version=$2 package=$3 output=$4
    local json dir work started
    started=$(date +%s)
    say "downloading ${module}@${version} from $(go env GOPROXY)"
    if ! json=$(go mod download -json "${module}@${version}"); then
        die "could not download ${module}@${version}: $(json_field Error <<<"$json")"
    fi
    dir=$(json_field Dir <<<"$json")
    [[ -n "$dir" && -d "$dir" ]] || die "go mod download gave no directory for ${module}@${version}"
    work=$(mktemp -d "${TMPDIR:-/tmp}/stave-build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    cp -R "$dir/." "$work/src"
    chmod -R u+w "$work/src"
    mkdir -p "$(dirname "$output")"
    say "building ${package} of ${module}@${version} (this takes minutes)"
    if ! (cd "$work/src" && go build -trimpath -o "$output.partial" "$package" >&2); then
        rm -f "$output.partial"
        die "building ${module}@${version} failed (see the Go output above)"
    fi
    mv -f "$output.partial" "$output"
    say "built $output in $(( $(date +%s) - started ))s"
}

kubo_bin=$CACHE_DIR/kubo/$KUBO_VERSION/ipfs
if [[ -x "$kubo_bin" ]] && "$kubo_bin" version 2>/dev/null | grep -q "version ${KUBO_VERSION#v}\$"; then
    say "Kubo ${KUBO_VERSION} already built at $kubo_bin"
else
    build_module "$KUBO_MODULE" "$KUBO_VERSION" ./cmd/ipfs "$kubo_bin"
    "$kubo_bin" version | grep -q "version ${KUBO_VERSION#v}\$" \
        || die "$kubo_bin does not report version ${KUBO_VERSION#v}"
fi

echo "$kubo_bin"
