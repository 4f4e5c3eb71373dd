#!/usr/bin/env bash
# Install what tests/slurm/start_cluster.sh needs: SLURM (slurmctld, slurmd,
# client commands) and MUNGE, from the distribution (Debian/Ubuntu, as root).
# Idempotent: does nothing when the binaries are already there.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    echo "install.sh: slurm and munge already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install.sh: no apt-get; install slurmctld, slurmd, slurm-client and munge by hand" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# slurm-wlm pulls in slurmctld, slurmd, slurm-client and munge.
$SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge
