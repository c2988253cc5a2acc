#!/usr/bin/env bash
# Installs what the local stack needs from the system's package manager (Debian/Ubuntu), if missing:
# a JDK and Maven (the Kafka broker is assembled from Maven Central), PostgreSQL and Redis, and Chromium
# with its driver for the browser tests.
set -euo pipefail

need=()
command -v java >/dev/null || need+=(default-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
# A real browser for the tests of pages people look at (the API reference, the console)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "missing: ${need[*]}; install them with your system's package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's postgresql package may start its own cluster on 5432; the stack runs its own under .stack/.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h 2>/dev/null | while read -r ver name _port status _rest; do
    if [ "$status" = online ]; then $sudo pg_ctlcluster "$ver" "$name" stop || true; fi
    echo manual | $sudo tee "/etc/postgresql/$ver/$name/start.conf" >/dev/null || true
  done
fi
# Likewise the packaged redis-server, if its init script started it.
if [ -f /var/run/redis/redis-server.pid ]; then $sudo kill "$(cat /var/run/redis/redis-server.pid)" 2>/dev/null || true; fi
