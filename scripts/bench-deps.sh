#!/usr/bin/env bash
# Benchmark-only dependencies (not needed to use or test shoal): an sshd to
# compare with clush over ssh. ClusterShell (clush) comes with the dev extras.
set -eu
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "bench: openssh-server is missing; install it (apt-get install openssh-server) as root" >&2
    exit 1
fi
echo "bench: installing openssh-server (benchmark only)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server openssh-client >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server openssh-client >/dev/null; }
# Installing must not leave a system sshd running: the benchmark starts its own.
if command -v systemctl >/dev/null && systemctl is-active -q ssh 2>/dev/null; then
    echo "bench: note: the package enabled the system ssh service; the benchmark does not use it"
fi
