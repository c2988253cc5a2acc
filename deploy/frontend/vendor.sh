#!/usr/bin/env bash
# Vendors the front-end files the suite serves itself, from npm, at the versions pinned below, into
# shared/llmops_shared/static/vendor/ (committed: a service image needs no npm, and no page fetches anything
# from a CDN at run time). Run it by hand to update a version; `VERSIONS` records what is there, and a test
# checks it matches the pins here.
set -euo pipefail
cd "$(dirname "$0")/../.."

SWAGGER_UI_DIST=5.35.0   # the API reference at /docs (Swagger UI)
REDOC=2.5.2              # the API reference at /redoc

dest=shared/llmops_shared/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_DIST" "redoc@$REDOC" >/dev/null)

mkdir -p "$dest/swagger-ui" "$dest/redoc"
tar -xzf "$tmp/swagger-ui-dist-$SWAGGER_UI_DIST.tgz" -C "$tmp" \
  package/swagger-ui-bundle.js package/swagger-ui.css package/favicon-32x32.png package/LICENSE
cp "$tmp"/package/{swagger-ui-bundle.js,swagger-ui.css,favicon-32x32.png,LICENSE} "$dest/swagger-ui/"
rm -rf "$tmp/package"
tar -xzf "$tmp/redoc-$REDOC.tgz" -C "$tmp" package/bundles/redoc.standalone.js package/LICENSE
cp "$tmp/package/bundles/redoc.standalone.js" "$tmp/package/LICENSE" "$dest/redoc/"

cat > "$dest/VERSIONS" <<VERSIONS
swagger-ui-dist $SWAGGER_UI_DIST
redoc $REDOC
VERSIONS
echo "vendored into $dest:"
cat "$dest/VERSIONS"
