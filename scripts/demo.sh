#!/usr/bin/env bash
# A tour of shoal on an 8-node local cluster (run by `make demo`, with
# .venv/bin on PATH). Everything lives in a temporary SHOAL_HOME that is
# removed at the end; the cluster always comes down, whatever happens.
set -u

exec </dev/null  # piped stdin would go to the tour's commands on every node
export SHOAL_HOME="$(mktemp -d -t shoal-demo.XXXXXX)"
cleanup() {
    [ -n "${scheduler:-}" ] && kill "$scheduler" 2>/dev/null && wait "$scheduler"
    echo
    step shoal cluster down
    rm -rf "$SHOAL_HOME"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$'\e[1m'; dim=$'\e[2m'; off=$'\e[0m'
[ -t 1 ] || { bold=""; dim=""; off=""; }

# Echo a command, run it, show its exit status; never stop the tour.
# Show a word as a user would type it: quoted when the shell needs it.
show() {
    local out="" w
    for w in "$@"; do
        if [[ $w =~ ^[A-Za-z0-9_./=:@,-]+$ ]]; then out+=" $w"; else out+=" '${w//\'/\'\\\'\'}'"; fi
    done
    echo "${out# }"
}

step() {
    echo
    echo "${bold}\$ $(show "$@")${off}"
    "$@"
    local rc=$?
    echo "${dim}(exit status $rc)${off}"
    return 0
}

echo "${bold}shoal demo${off}: SHOAL_HOME=$SHOAL_HOME"
step shoal cluster up -n 8 || exit 1
shoal cluster status >/dev/null 2>&1 || { echo "the cluster did not start"; exit 1; }

step shoal run -w 'node[1-8]' -b -- uname -a
echo "${dim}# the agent names each node in \$SHOAL_NODE; node3 and node6 fail:${off}"
step shoal run -w 'node[1-8]' -- 'case $SHOAL_NODE in node3|node6) echo "disk check failed on $(hostname)" >&2; exit 2;; *) echo ok;; esac'
echo "${dim}# a 1-second time limit: node[1-2] sleep 5 s and are killed, the rest finish${off}"
step shoal run -w 'node[1-8]' -t 1 -- 'case $SHOAL_NODE in node1|node2) sleep 5;; esac; echo done'
step shoal ping -w 'node[1-8]'
step shoal facts -w 'node[1-8]'

# A benchmark campaign (docs/bench.md): two layouts of this machine's cores,
# every slot a cpuset sandbox, phases read from the logs, a table and plots.
if [ "$(id -u)" = 0 ]; then
    results="$(mktemp -d -t shoal-demo-bench.XXXXXX)"
    sed -e 's/--work 10/--work 2/; s/^repetitions = 3/repetitions = 2/' \
        examples/benchy-campaign.toml > "$results/campaign.toml"
    step shoal copy -w 'node[1-2]' examples/benchy_like.py /tmp/
    step shoal bench plan "$results/campaign.toml"
    step shoal bench run "$results/campaign.toml" -o "$results/out"
    echo "${dim}# the report and its plots stay in $results/out${off}"
else
    echo "${dim}# shoal bench needs cpuset sandboxes: run the demo as root to see a campaign${off}"
fi

# Functions on warm containers (docs/faas.md): a scheduler over the nodes, a
# Python function whose code it sends through the tree, a cold call, a warm one.
if [ "$(id -u)" = 0 ]; then
    fdir="$(mktemp -d -t shoal-demo-faas.XXXXXX)"
    mkdir -p "$fdir/hello"
    printf 'def main(event):\n    return {"hello": event["name"]}\n' > "$fdir/hello/app.py"
    printf '[functions.hello]\nhandler = "app:main"\nmemory_mb = 128\ncode = "hello"\n' \
        > "$fdir/functions.toml"
    echo
    echo "${bold}\$ shoal faas scheduler -w 'node[1-8]' --functions $fdir/functions.toml &${off}"
    shoal faas scheduler -w 'node[1-8]' --functions "$fdir/functions.toml" \
        --code-root "$fdir/nodes" 2>"$fdir/scheduler.log" &
    scheduler=$!
    for _ in $(seq 300); do [ -s "$SHOAL_HOME/faas/scheduler.addr" ] && break; sleep 0.1; done
    step shoal faas invoke hello --event '{"name": "demo"}'
    step shoal faas invoke hello --event '{"name": "again"}'
    step shoal faas functions
    kill "$scheduler"; wait "$scheduler"; scheduler=""
    rm -rf "$fdir"
else
    echo "${dim}# shoal faas containers are sandboxes: run the demo as root to see functions${off}"
fi
