#!/usr/bin/env bash
# Copy the front-end files the app serves from node_modules/ into
# src/citybrain/web/static/vendor/ (gitignored). Run after `npm ci`.
# Idempotent; works from any directory. Needs no network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

NM="$ROOT/node_modules"
DEST="$ROOT/src/citybrain/web/static/vendor"

if [[ ! -d "$NM" ]]; then
    echo "vendor.sh: $NM is missing; run 'npm ci' in $ROOT first." >&2
    exit 1
fi

# copy SRC DEST_REL [optional]
copy() {
    local src="$NM/$1" dst="$DEST/$2" optional="${3:-}"
    if [[ ! -f "$src" ]]; then
        if [[ "$optional" == "optional" ]]; then
            echo "vendor.sh: skipping $1 (not present)"
            return 0
        fi
        echo "vendor.sh: $src is missing; is node_modules complete? Run 'npm ci' in $ROOT." >&2
        exit 1
    fi
    mkdir -p "$(dirname "$dst")"
    # Copy to a temp file then rename, so a served file is never half-written.
    cp -f "$src" "$dst.tmp.$$"
    chmod 0644 "$dst.tmp.$$"
    mv -f "$dst.tmp.$$" "$dst"
    echo "vendor.sh: $2"
}

copy echarts/dist/echarts.min.js            echarts/echarts.min.js
copy htmx.org/dist/htmx.min.js              htmx/htmx.min.js
copy swagger-ui-dist/swagger-ui-bundle.js   swagger-ui/swagger-ui-bundle.js
copy swagger-ui-dist/swagger-ui.css         swagger-ui/swagger-ui.css
copy swagger-ui-dist/favicon-32x32.png      swagger-ui/favicon-32x32.png optional

# Licence texts travel with the copied code.
copy echarts/LICENSE                        echarts/LICENSE optional
copy htmx.org/LICENSE                       htmx/LICENSE optional
copy swagger-ui-dist/LICENSE                swagger-ui/LICENSE optional
copy swagger-ui-dist/NOTICE                 swagger-ui/NOTICE optional

echo "vendor.sh: done -> ${DEST#"$ROOT"/}"
