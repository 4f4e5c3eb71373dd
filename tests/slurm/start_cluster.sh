#!/usr/bin/env bash
# Start (or reuse) a one-node SLURM cluster on this machine, for tests.
#
#   tests/slurm/start_cluster.sh [DIR]       # DIR defaults to $LMSCALE_SLURM_DIR or /tmp/lmscale-slurm
#   export SLURM_CONF=DIR/slurm.conf         # then sbatch/squeue/sinfo talk to it
#   tests/slurm/stop_cluster.sh [DIR]
#
# Assumes the Debian packages from tests/slurm/install.sh are present
# (slurmctld, slurmd, munge); installs nothing. Needs root (slurmd runs jobs
# as the submitting user). Everything (munge key and socket, state, spool,
# logs, rendered slurm.conf) lives under DIR; /etc is not touched. Outside
# DIR only one symlink is made: /run/slurm/conf/slurm.conf -> DIR/slurm.conf
# (why: see below), removed again by stop_cluster.sh.
# Idempotent: if the cluster in DIR already answers, it is left running.
# Last line of stdout on success: `export SLURM_CONF=DIR/slurm.conf`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-${LMSCALE_SLURM_DIR:-/tmp/lmscale-slurm}}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
CONF="$DIR/slurm.conf"
CTLD_PORT="${LMSCALE_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${LMSCALE_SLURMD_PORT:-6818}"
PARTITION="${LMSCALE_SLURM_PARTITION:-debug}"
TIMEOUT="${LMSCALE_SLURM_TIMEOUT:-60}"

die() { echo "start_cluster: $*" >&2; exit 1; }

for bin in munged slurmctld slurmd sinfo scontrol; do
    command -v "$bin" >/dev/null 2>&1 || die "missing '$bin' (run tests/slurm/install.sh)"
done
[ "$(id -u)" = 0 ] || die "must run as root (slurmd launches jobs as their owner)"

# Where job steps find the configuration. Snakemake's slurm-jobstep executor
# strips every SLURM_* variable (SLURM_CONF included) before it calls `srun`
# inside a job, so srun falls back to /etc/slurm/slurm.conf and then to
# /run/slurm/conf/slurm.conf (the configless cache path). We link our file at
# the latter and refuse to run where a real installation owns either path.
SYS_CONF=/etc/slurm/slurm.conf
RUN_CONF=/run/slurm/conf/slurm.conf
[ -e "$SYS_CONF" ] && die "$SYS_CONF exists (a real SLURM installation?); job steps would use it instead of the test cluster"
if [ -e "$RUN_CONF" ] && [ ! -L "$RUN_CONF" ]; then
    die "$RUN_CONF exists and is not our symlink (a configless slurmd?); not touching it"
fi

export SLURM_CONF="$CONF"

alive() {  # pidfile -> 0 if that process runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_ready() {
    local state
    state="$(sinfo -h -n localhost -o %T 2>/dev/null | head -n1)"
    case "$state" in idle*|mixed*|allocated*|completing*) return 0 ;; esac
    return 1
}

if [ -f "$CONF" ] && [ "$(readlink "$RUN_CONF" 2>/dev/null)" = "$CONF" ] \
    && alive "$DIR/run/munged.pid" && alive "$DIR/run/slurmctld.pid" \
    && alive "$DIR/run/slurmd.pid" && node_ready; then
    echo "start_cluster: cluster in $DIR already running"
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

mkdir -p "$DIR"/{munge,state,spool,run,log}
chmod 755 "$DIR/munge"

# Real memory for the node: what the machine has, minus a margin, in MB.
mem_total_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
MEM_MB="${LMSCALE_SLURM_MEM_MB:-$(( mem_total_mb * 9 / 10 ))}"
CPUS="${LMSCALE_SLURM_CPUS:-$(nproc)}"

sed -e "s|@DIR@|$DIR|g" \
    -e "s|@USER@|$(id -un)|g" \
    -e "s|@CPUS@|$CPUS|g" \
    -e "s|@MEM_MB@|$MEM_MB|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" \
    -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
    -e "s|@PARTITION@|$PARTITION|g" \
    "$HERE/slurm.conf.in" > "$CONF"

# munge: a private key and socket, so no system munged is needed.
if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
fi
if ! alive "$DIR/run/munged.pid"; then
    munged --force \
        --socket="$DIR/munge/munge.socket" \
        --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/run/munged.pid" \
        --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" \
        || die "munged failed to start; see $DIR/log/munged.log"
fi

mkdir -p "$(dirname "$RUN_CONF")"
ln -sfn "$CONF" "$RUN_CONF"

if ! alive "$DIR/run/slurmctld.pid"; then
    # -c: clear saved state, so a stale node/job table never blocks a fresh start.
    slurmctld -c -f "$CONF" || die "slurmctld failed to start; see $DIR/log/slurmctld.log"
fi
if ! alive "$DIR/run/slurmd.pid"; then
    slurmd -N localhost -f "$CONF" || die "slurmd failed to start; see $DIR/log/slurmd.log"
fi

deadline=$(( $(date +%s) + TIMEOUT ))
until node_ready; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "start_cluster: node not ready after ${TIMEOUT}s" >&2
        sinfo -N -l >&2 || true
        tail -n 20 "$DIR"/log/*.log >&2 || true
        exit 1
    fi
    # A node that registered as down (e.g. after a restart) is resumed.
    case "$(sinfo -h -n localhost -o %T 2>/dev/null | head -n1)" in
        down*|drain*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
echo "start_cluster: one-node cluster up in $DIR (partition $PARTITION, $CPUS CPUs, $MEM_MB MB)"
echo "export SLURM_CONF=$CONF"
