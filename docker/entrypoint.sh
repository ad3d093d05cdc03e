#!/bin/sh
# The container's entrypoint. With no arguments: on the first start (no key in the data
# directory yet) write config.toml from the environment and run `stave init`, then serve with
# `stave run`. With arguments: run them instead, e.g. `stave export - > backup.tar`.
#
# First-start environment (later, edit config.toml in the volume instead):
#   STAVE_NAME          the artist or project name (required on the first start)
#   STAVE_URL           the public base URL, e.g. https://music.example/ (node.url; required:
#                       inside a container stave run listens on 0.0.0.0, which no listener
#                       can reach, so it will not guess the URL)
#   STAVE_IPFS_BACKEND  embedded (default) or kubo (ipfs.backend)
#   STAVE_IPFS_API      Kubo's RPC address, e.g. http://kubo:5001 (ipfs.api)
# Where `stave run` listens inside the container (leave them; the image's HEALTHCHECK asks
# 127.0.0.1:8080): STAVE_LISTEN_HOST (0.0.0.0) and STAVE_LISTEN_PORT (8080).
set -eu

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

DATA_DIR="${STAVE_DATA_DIR:-/data}"

if [ ! -e "$DATA_DIR/key.pem" ]; then
    if [ -z "${STAVE_NAME:-}" ]; then
        echo "stave: set STAVE_NAME (the artist or project name) for the first start" >&2
        exit 2
    fi
    if [ -z "${STAVE_URL:-}" ] && [ ! -e "$DATA_DIR/config.toml" ]; then
        echo "stave: set STAVE_URL (the public URL listeners reach, e.g. https://music.example/) for the first start" >&2
        exit 2
    fi
    if [ ! -e "$DATA_DIR/config.toml" ]; then
        python - <<'PY'
import os
import sys
from pathlib import Path

from node.errors import StaveError
from node.settings import Config, render_config

values = {"node.name": os.environ["STAVE_NAME"], "server.host": "0.0.0.0"}
for variable, name in (
    ("STAVE_URL", "node.url"),
    ("STAVE_IPFS_BACKEND", "ipfs.backend"),
    ("STAVE_IPFS_API", "ipfs.api"),
):
    if os.environ.get(variable):
        values[name] = os.environ[variable]
url = values.get("node.url")
if url and not url.endswith("/"):
    values["node.url"] = url + "/"
try:
    Config(values)
except StaveError as e:
    sys.exit(f"stave: {e}")
path = Path(os.environ.get("STAVE_DATA_DIR", "/data")) / "config.toml"
path.write_text(render_config(values), encoding="utf-8")
PY
    fi
    stave init --name "$STAVE_NAME"
fi

exec stave run --host "${STAVE_LISTEN_HOST:-0.0.0.0}" --port "${STAVE_LISTEN_PORT:-8080}"
