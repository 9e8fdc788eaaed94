#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the run_batch Slurm executor's tests
# (tests/it/slurm_cluster.rs). Idempotent: a second call finds the cluster up and returns.
#
# Debian's slurm-wlm (22.05) with munge, no systemd and no cgroups: munged runs as the
# munge user; slurmctld and slurmd run as root against a config this script owns in
# $CTMR_SLURM_DIR (default /var/lib/ctmr-slurm): slurm.conf, state, spool, logs.
# /etc/slurm/slurm.conf is linked to it so sbatch/squeue/scancel need no SLURM_CONF,
# unless that file already exists and is not ours (then export SLURM_CONF, printed).
#
# Why the settings (facts checked on Debian 12 in a container):
# - SlurmctldHost=$(hostname -s)(127.0.0.1), NodeAddr=127.0.0.1 and `slurmd -N NAME`:
#   no hostname resolution needed.
# - proctrack/linuxproc, task/none, no cgroup.conf: containers often lack a writable
#   cgroup tree.
# - select/cons_tres with CR_Core and DefMemPerCPU: without a per-CPU memory default a
#   job is given the node's whole memory and tasks run one at a time.
# - MinJobAge=3600: without accounting (slurmdbd), finished array tasks stay visible
#   to `squeue -t all` / `scontrol show job` for an hour, which is how the coordinator
#   learns each task's final state, reason and exit code.
# Needs root (apt-get, daemons). Secrets: the munge key stays in /etc/munge (0400).
set -euo pipefail

DIR="${CTMR_SLURM_DIR:-/var/lib/ctmr-slurm}"
NODE="${CTMR_SLURM_NODE:-ctmr-node}"
PARTITION="${CTMR_SLURM_PARTITION:-debug}"
say() { printf 'setup-slurm: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts slurmctld/slurmd); run: sudo bash $0"

node_up() {
  local state
  state="$(timeout 5 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1)" || return 1
  case "$state" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

if command -v sinfo >/dev/null && node_up; then
  say "cluster already up: node $NODE in partition $PARTITION; config in $DIR"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
fi

# munge: a key, /run/munge, the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null
  else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged as the munge user"
  runuser -u munge -- munged --force || die "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  munge -n | unmunge >/dev/null 2>&1 || die "munge does not answer (see /var/log/munge/munged.log)"
fi

# The config.
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
CPUS="$(nproc)"
# slurmctld runs only where its own short host name is SlurmctldHost's name.
CTL="$(hostname -s)"
MEM_MB="$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
REAL_MB=$(( MEM_MB * 9 / 10 ))
PER_CPU=$(( REAL_MB / CPUS ))
cat > "$DIR/slurm.conf.new" <<EOF
# Written by ctmr-skill scripts/setup-slurm.sh: a one-node test cluster.
ClusterName=ctmr
SlurmctldHost=$CTL(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
DefMemPerCPU=$PER_CPU
MinJobAge=3600
ReturnToService=2
MaxArraySize=10001
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mv "$DIR/slurm.conf.new" "$DIR/slurm.conf"

CONF=/etc/slurm/slurm.conf
mkdir -p /etc/slurm
if [ -L "$CONF" ] || [ ! -e "$CONF" ]; then
  ln -sfn "$DIR/slurm.conf" "$CONF"
elif ! grep -q 'Written by ctmr-skill' "$CONF"; then
  say "$CONF exists and is not ours; leaving it. Use: export SLURM_CONF=$DIR/slurm.conf"
fi
export SLURM_CONF="$DIR/slurm.conf"

# The daemons (restarted when running with an older config).
stop_pidfile() {
  local f="$1"
  if [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.25; done
  fi
}
stop_pidfile "$DIR/slurmd.pid"
stop_pidfile "$DIR/slurmctld.pid"
say "starting slurmctld and slurmd (node $NODE, $CPUS CPUs, ${REAL_MB} MB, DefMemPerCPU=$PER_CPU)"
slurmctld -f "$SLURM_CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log: $(tail -n 5 "$DIR/log/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" -N "$NODE" || die "slurmd did not start; see $DIR/log/slurmd.log: $(tail -n 5 "$DIR/log/slurmd.log" 2>/dev/null)"

for _ in $(seq 1 60); do
  if node_up; then
    say "cluster up: node $NODE idle in partition $PARTITION; config, state and logs in $DIR"
    exit 0
  fi
  state="$(timeout 5 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)"
  case "$state" in down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;; esac
  sleep 0.5
done
die "node $NODE is not idle after 30 s (state: $(timeout 5 sinfo -h -N -o '%N %T %E' 2>&1 | head -n3)); logs: $(tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" 2>/dev/null)"
