#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/slurm/start_cluster.sh [DIR].
# Signals only the daemons whose pid files are in DIR/run, and removes the
# /run/slurm/conf/slurm.conf link if it points into DIR.
set -uo pipefail
DIR="${1:-${LMSCALE_SLURM_DIR:-/tmp/lmscale-slurm}}"
[ -d "$DIR" ] && DIR="$(cd "$DIR" && pwd)"

stop() {  # pidfile... : TERM them all, wait up to 10 s, then KILL what is left
    local pids=() f p
    for f in "$@"; do
        [ -s "$f" ] || continue
        p="$(cat "$f")"
        kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null && pids+=("$p")
        rm -f "$f"
    done
    for _ in $(seq 100); do
        local left=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
}

stop "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid"
stop "$DIR/run/munged.pid"
RUN_CONF=/run/slurm/conf/slurm.conf
if [ -L "$RUN_CONF" ] && [ "$(readlink "$RUN_CONF")" = "$DIR/slurm.conf" ]; then
    rm -f "$RUN_CONF"
fi
echo "stop_cluster: stopped daemons of $DIR"
