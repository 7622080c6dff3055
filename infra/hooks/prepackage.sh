#!/bin/sh
# azd prepackage hook of service `api`: make functions/ a self-contained deployment package.
# function_app.py imports the `indexer` package, and indexer reads the index definitions from
# schemas/ next to it; both live at the repository root, outside the service directory that azd
# zips. Copy fresh copies of both into functions/ (git ignores functions/indexer and
# functions/schemas), dropping byte-code caches so nothing stale or machine-specific ships.
set -eu
HOOK_NAME=prepackage
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

root=$(cd "$here/../.." && pwd)
app="$root/functions"
[ -d "$app" ] || die "$app is missing; the Function app lives in functions/"

for pkg in indexer schemas; do
    [ -d "$root/$pkg" ] || die "$root/$pkg is missing; run the hook from a full checkout"
    rm -rf "${app:?}/$pkg"
    cp -R "$root/$pkg" "$app/$pkg"
    find "$app/$pkg" -type d -name __pycache__ -prune -exec rm -rf {} +
    find "$app/$pkg" -type f -name '*.py[co]' -exec rm -f {} +
    say "copied $pkg/ into functions/$pkg/"
done
