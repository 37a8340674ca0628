#!/usr/bin/env bash
# nginx for benchmarks/gateway.py only (round-robin baseline); started there with
# its own generated config on a free port, never the system one.
set -euo pipefail
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q nginx-light >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null; } || apt-get install -y -q nginx >/dev/null
