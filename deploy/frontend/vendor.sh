#!/usr/bin/env bash
# Vendors the front-end files the suite serves itself, from npm, at the versions pinned below, into
# shared/llmops_shared/static/vendor/ (the API reference pages, and the console's htmx and uPlot; committed: a service image needs no npm, and no page fetches anything
# from a CDN at run time). Run it by hand to update a version; `VERSIONS` records what is there, and a test
# checks it matches the pins here.
set -euo pipefail
cd "$(dirname "$0")/../.."

SWAGGER_UI_DIST=5.35.0   # the API reference at /docs (Swagger UI)
REDOC=2.5.2              # the API reference at /redoc
HTMX_ORG=2.0.11          # the console's partial updates and polling (htmx; 2.x, not 4.x: the console uses 2.x attributes)
UPLOT=1.6.32             # the console's time-series charts (uPlot, canvas)

dest=shared/llmops_shared/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_DIST" "redoc@$REDOC" "htmx.org@$HTMX_ORG" \
  "uplot@$UPLOT" >/dev/null)

mkdir -p "$dest/swagger-ui" "$dest/redoc" "$dest/htmx" "$dest/uplot"
tar -xzf "$tmp/swagger-ui-dist-$SWAGGER_UI_DIST.tgz" -C "$tmp" \
  package/swagger-ui-bundle.js package/swagger-ui.css package/favicon-32x32.png package/LICENSE
cp "$tmp"/package/{swagger-ui-bundle.js,swagger-ui.css,favicon-32x32.png,LICENSE} "$dest/swagger-ui/"
rm -rf "$tmp/package"
tar -xzf "$tmp/redoc-$REDOC.tgz" -C "$tmp" package/bundles/redoc.standalone.js package/LICENSE
cp "$tmp/package/bundles/redoc.standalone.js" "$tmp/package/LICENSE" "$dest/redoc/"
rm -rf "$tmp/package"
tar -xzf "$tmp/htmx.org-$HTMX_ORG.tgz" -C "$tmp" package/dist/htmx.min.js package/LICENSE
cp "$tmp/package/dist/htmx.min.js" "$tmp/package/LICENSE" "$dest/htmx/"
rm -rf "$tmp/package"
tar -xzf "$tmp/uplot-$UPLOT.tgz" -C "$tmp" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/uplot/"

cat > "$dest/VERSIONS" <<VERSIONS
swagger-ui-dist $SWAGGER_UI_DIST
redoc $REDOC
htmx.org $HTMX_ORG
uplot $UPLOT
VERSIONS
echo "vendored into $dest:"
cat "$dest/VERSIONS"
