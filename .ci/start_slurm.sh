#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine (controller and node daemon on loopback), for
# tests/test_slurm.py. Idempotent: if `sinfo` already shows an idle node, nothing is changed.
#
#   .ci/start_slurm.sh          # needs root (CI runs as root); installs slurm-wlm + munge with apt-get if missing
#
# Exit status (the reason is printed on stderr; tests/test_slurm.py skips when no node is idle):
#   0  a node is idle
#   3  SLURM cannot be had in this environment: not root, or apt-get cannot reach a Debian mirror
#   1  anything else (packages present but a daemon did not come up): a real failure
# Tested on Debian 12 (slurm-wlm 22.05.8, munge 0.5.15) as root on a 2-core machine.
set -uo pipefail

WAIT_S=${SLURM_START_TIMEOUT:-90}
MARK="# written by jaxpm .ci/start_slurm.sh"
CONF=/etc/slurm/slurm.conf
say() { echo "start_slurm: $*" >&2; }
fail() { echo "start_slurm: ERROR: $*" >&2; exit 1; }
unavailable() { echo "start_slurm: UNAVAILABLE: $*" >&2; exit 3; }

node_idle() { sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed)'; }

if command -v sinfo >/dev/null && node_idle; then
    say "SLURM already up: $(sinfo -h -o '%N %T %c CPUs' | head -1)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || unavailable "not root: cannot install or start SLURM daemons here"

# -- packages ------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    log=/tmp/start_slurm_apt.log
    apt-get update -qq >"$log" 2>&1 \
        || { tail -5 "$log" >&2; unavailable "apt-get update failed (no network or no Debian mirror reachable); log: $log"; }
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >>"$log" 2>&1 \
        || { tail -5 "$log" >&2; unavailable "apt-get install slurm-wlm munge failed; log: $log"; }
    say "installed: $(dpkg-query -W -f='${Package} ${Version}  ' slurm-wlm munge)"
fi

# -- munge: shared key, daemon as the munge user ----------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged || fail "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done
    munge -n | unmunge >/dev/null 2>&1 || fail "munge credential round trip failed"
fi
say "munge OK"

# -- slurm.conf for this host ---------------------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    say "keeping the existing $CONF (not written by this script)"
else
    say "writing $CONF (node $HOST, $CPUS CPUs)"
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
    cat > "$CONF" <<EOF
$MARK
ClusterName=jaxpmci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
fi

# -- daemons -----------------------------------------------------------------------------------------------
if ! scontrol ping 2>/dev/null | grep -q 'is UP'; then
    say "starting slurmctld"
    slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
if ! pgrep -x slurmd >/dev/null; then
    say "starting slurmd"
    slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi

t0=$SECONDS
while ! node_idle; do
    state=$(sinfo -h -o '%T' 2>/dev/null | head -1)
    case "$state" in
        down*|drain*|unknown*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 ;;
    esac
    if [ $((SECONDS - t0)) -ge "$WAIT_S" ]; then
        sinfo >&2 || true
        tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 2>/dev/null || true
        fail "no idle node after ${WAIT_S} s (state: ${state:-none})"
    fi
    sleep 1
done
say "SLURM up in $((SECONDS - t0)) s after start: $(sinfo -h -o '%N %T %c CPUs' | head -1)"
