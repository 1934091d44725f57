#!/usr/bin/env bash
# scripts/slurm/stop.sh - stop what start.sh started, by pid file only (never by process name).
#   --keep-munge  only stop slurmd + slurmctld (used by start on a config change)
#   --purge       also delete state, logs, config and the /etc/slurm link
set -uo pipefail
BASE=${SLURM_LOCAL_DIR:-/tmp/hne-slurm}
RUN=$BASE/run MUNGE=$BASE/munge
KEEP_MUNGE=0 PURGE=0
for a in "$@"; do
    case "$a" in --keep-munge) KEEP_MUNGE=1 ;; --purge) PURGE=1 ;; *) echo "unknown arg $a" >&2; exit 2 ;; esac
done
say() { echo "[slurm-stop] $*"; }
is() { [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]; }

# stop_pid PIDFILE NAME: TERM the process in PIDFILE (only if it is NAME), KILL after 15 s
stop_pid() {
    local f=$1 name=$2 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    if is "$f" "$name"; then
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then say "$name did not exit, SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
    fi
    rm -f "$f"
}

# cancel leftover jobs while the controller is still up
if is "$RUN/slurmctld.pid" slurmctld; then
    jobs=$(squeue -h -o '%i' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then say "cancelling jobs: $jobs"; scancel $jobs 2>/dev/null; sleep 1; fi
fi
stop_pid "$RUN/slurmd.pid" slurmd
stop_pid "$RUN/slurmctld.pid" slurmctld
rm -f "$RUN/conf.sha256"
if [ "$KEEP_MUNGE" = 0 ]; then
    stop_pid "$MUNGE/munged.pid" munged
    # A client config naming a stopped controller makes every later `snakemake` start-up wait ~10 s: the SLURM
    # plugin runs `scontrol show config`, which retries the dead controller. Take our link away on a full stop.
    if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$BASE/etc/slurm.conf" ]; then
        rm -f /etc/slurm/slurm.conf
        if [ -e /etc/slurm/slurm.conf.orig ]; then mv /etc/slurm/slurm.conf.orig /etc/slurm/slurm.conf; fi
        say "removed the /etc/slurm/slurm.conf link"
    fi
fi

if [ "$PURGE" = 1 ]; then
    say "purging $BASE/{etc,run,log,state,munge}"
    rm -rf "$BASE/etc" "$BASE/run" "$BASE/log" "$BASE/state" "$BASE/munge"
    for l in /etc/slurm/slurm.conf; do
        if [ -L "$l" ]; then rm -f "$l"; fi
    done
fi
say "done"
