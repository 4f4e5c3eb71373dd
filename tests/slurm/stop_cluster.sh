#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/slurm/start_cluster.sh [DIR].
# Kills only the daemons whose pid files are in DIR/run.
set -uo pipefail
DIR="${1:-${LMSCALE_SLURM_DIR:-/tmp/lmscale-slurm}}"
for name in slurmd slurmctld munged; do
    pidfile="$DIR/run/$name.pid"
    if [ -s "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        fi
        rm -f "$pidfile"
    fi
done
echo "stop_cluster: stopped daemons of $DIR"
