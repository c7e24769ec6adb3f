# shellcheck shell=bash
# Shared functions of the local stack scripts (up, down, status, test). Sourced, never run.
#
# Everything the stack keeps lives outside the clone, in $STUDYSPOT_HOME:
#   broker/   the broker's SQLite database (tansu.db)
#   logs/     one log file per process (broker.log, gateway.log, billing.log, ...)
#   run/      pid files, postgres.started (PostgreSQL was started by these scripts), lock
#   mail/     each e-mail the local mail sink (studyspot-mail-sink) received, as an .eml file
#   secrets.toml  this installation's random secrets (mode 0600), made by `up` on its first run
#
# Every address can be overridden from the environment; the Rust processes read the same variables
# (STUDYSPOT_<SECTION>__<KEY>, see config/studyspot.toml).

# Variables here are read by the scripts that source this file; bash -c snippets expand their own $0 $1.
# shellcheck disable=SC2034,SC2016
set -euo pipefail
set -E

# ---------------------------------------------------------------------------------------------------
# Locations and defaults

# Variables these scripts give a default get exported for the processes `up` starts; `test` and
# `bench` take the export back (unexport_defaults) so cargo sees only what the caller set.
_defaulted=()
default_env() {
  local name=$1 value=$2
  if [[ -z "${!name:-}" ]]; then
    printf -v "$name" '%s' "$value"
    _defaulted+=("$name")
  fi
  export "${name?}"
}
unexport_defaults() {
  local name
  for name in "${_defaulted[@]+"${_defaulted[@]}"}"; do export -n "${name?}"; done
}

STUDYSPOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STUDYSPOT_HOME="${STUDYSPOT_HOME:-${HOME:?HOME is not set}/.local/share/studyspot}"
BROKER_DIR="$STUDYSPOT_HOME/broker"
LOG_DIR="$STUDYSPOT_HOME/logs"
RUN_DIR="$STUDYSPOT_HOME/run"

TOOLS_ROOT="${STUDYSPOT_TOOLS:-$HOME/.cache/studyspot/tools}"
TANSU_VERSION="0.6.0"
TANSU_DEFAULT_BIN="$TOOLS_ROOT/bin/tansu"
TANSU_BIN="${STUDYSPOT_TANSU_BIN:-$TANSU_DEFAULT_BIN}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/studyspot-target}"
RELEASE_DIR="$CARGO_TARGET_DIR/release"

default_env PGHOST 127.0.0.1
default_env PGPORT 5432

default_env STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS 127.0.0.1:9092
# The broker we start (when the first bootstrap server is on this machine).
BROKER_ADDR="${STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS%%,*}"
default_env STUDYSPOT_REGISTRY__LISTEN 127.0.0.1:8081
default_env STUDYSPOT_REGISTRY__URL "http://${STUDYSPOT_REGISTRY__LISTEN/#0.0.0.0:/127.0.0.1:}"
# The local stack's secrets (token, tracking-link and QR keys): random, written once by `up`
# (`studyspot secrets init`, mode 0600) and read by every process it starts and by `studyspot token`.
default_env STUDYSPOT_SECRETS_FILE "$STUDYSPOT_HOME/secrets.toml"
default_env STUDYSPOT_GATEWAY__HTTP_LISTEN 127.0.0.1:8080
default_env STUDYSPOT_GATEWAY__GRPC_LISTEN 127.0.0.1:50051
# Webhooks and health checks may reach loopback, where the local stack's processes and fakes
# listen; nothing else private (outbound.allow in config/studyspot.toml).
default_env STUDYSPOT_OUTBOUND__ALLOW '["127.0.0.0/8", "::1/128"]'

# The local stack's e-mail goes to its mail sink (studyspot-mail-sink, started with the services),
# which writes each message to $STUDYSPOT_MAIL_DIR as an .eml file.
default_env STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST 127.0.0.1
default_env STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT 2525
default_env STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS none
default_env STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM "StudySpot <no-reply@studyspot.localhost>"
default_env STUDYSPOT_MAIL_DIR "$STUDYSPOT_HOME/mail"

# Alert rules evaluate every 5 s on one machine's few organizations (15 s by default), so an alert
# fires and resolves while the person who caused it watches (the demo waits for both).
default_env STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS 5

# Seconds to wait for a process to become ready, and for one to stop after SIGTERM.
READY_TIMEOUT="${STUDYSPOT_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${STUDYSPOT_STOP_TIMEOUT:-20}"

# The Rust processes, in start order; `down` stops them in reverse.
#   name | binary | address of /ready | variable that hands the address to the process | more ports it binds
# The first entry (the schema registry) is started alone and must be ready before
# `studyspot topics ensure` and `studyspot schemas register` run; the others start together after.
# A consumer's ops address can be moved with STUDYSPOT_<NAME>_OPS_LISTEN (e.g. STUDYSPOT_BILLING_OPS_LISTEN);
# the script hands it to that process alone as STUDYSPOT_OPS_LISTEN.
SERVICES=(
  "schema-registry|studyspot-schema-registry|$STUDYSPOT_REGISTRY__LISTEN|STUDYSPOT_REGISTRY__LISTEN|"
  "mail-sink|studyspot-mail-sink|${STUDYSPOT_MAIL_SINK_OPS_LISTEN:-127.0.0.1:9105}|STUDYSPOT_OPS_LISTEN|$STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST:$STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT"
  "gateway|studyspot-gateway|$STUDYSPOT_GATEWAY__HTTP_LISTEN|STUDYSPOT_GATEWAY__HTTP_LISTEN|$STUDYSPOT_GATEWAY__GRPC_LISTEN"
  "billing|studyspot-billing|${STUDYSPOT_BILLING_OPS_LISTEN:-127.0.0.1:9101}|STUDYSPOT_OPS_LISTEN|"
  "notifications|studyspot-notifications|${STUDYSPOT_NOTIFICATIONS_OPS_LISTEN:-127.0.0.1:9102}|STUDYSPOT_OPS_LISTEN|"
  "attendance|studyspot-attendance|${STUDYSPOT_ATTENDANCE_OPS_LISTEN:-127.0.0.1:9103}|STUDYSPOT_OPS_LISTEN|"
  "alerts|studyspot-alerts|${STUDYSPOT_ALERTS_OPS_LISTEN:-127.0.0.1:9104}|STUDYSPOT_OPS_LISTEN|"
)
CLI_BIN_NAME="studyspot"
CLI_PACKAGE="studyspot-cli"
# Handed per process only; a value in the caller's environment must not reach every process.
unset STUDYSPOT_OPS_LISTEN

# Fields of one SERVICES entry: sets svc_name svc_bin svc_addr svc_var svc_extra.
service_fields() {
  IFS='|' read -r svc_name svc_bin svc_addr svc_var svc_extra <<<"$1"
}

# ---------------------------------------------------------------------------------------------------
# Output

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
  _c_bold=$'\e[1m' _c_red=$'\e[31m' _c_green=$'\e[32m' _c_yellow=$'\e[33m' _c_off=$'\e[0m'
else
  _c_bold='' _c_red='' _c_green='' _c_yellow='' _c_off=''
fi

say() { printf '%s==>%s %s\n' "$_c_bold" "$_c_off" "$*"; }
ok() { printf '%s ok%s %s\n' "$_c_green" "$_c_off" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_c_yellow" "$_c_off" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$_c_red" "$_c_off" "$*" >&2
  exit 1
}

# An unexpected failing command names itself instead of ending the script silently.
_on_err() {
  local rc=$1 line=$2 cmd=$3
  printf '%serror:%s command failed (exit %s) at %s line %s: %s\n' \
    "$_c_red" "$_c_off" "$rc" "${BASH_SOURCE[1]:-$0}" "$line" "$cmd" >&2
}
trap '_on_err $? $LINENO "$BASH_COMMAND"' ERR

have() { command -v "$1" >/dev/null 2>&1; }

ensure_dirs() {
  mkdir -p "$BROKER_DIR" "$LOG_DIR" "$RUN_DIR"
}

# One up/down/test at a time touches processes and pid files. The lock fd (9) is closed in every
# process we start, so a running service never holds it.
stack_lock() {
  have flock || return 0
  exec 9>"$RUN_DIR/lock"
  flock -w "${1:-10}" 9 && return 0
  local holders="" p fd
  for p in /proc/[0-9]*; do
    [[ "$p" == "/proc/$$" || "$p" == "/proc/$BASHPID" ]] && continue
    for fd in "$p"/fd/*; do
      if [[ "$(readlink "$fd" 2>/dev/null)" == "$RUN_DIR/lock" ]]; then
        holders+=" ${p#/proc/}($(tr -d '\n' <"$p/comm" 2>/dev/null || true))"
        break
      fi
    done
  done
  die "another up/down/test is working on $STUDYSPOT_HOME (lock $RUN_DIR/lock held by pid${holders:- unknown}); try again when it is done"
}
stack_unlock() {
  have flock || return 0
  exec 9>&-
}

# ---------------------------------------------------------------------------------------------------
# Privileges and packages

# Both close the lock fd (9): a server they start (pg_ctlcluster, apt-get's postinst) must not hold it.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@" 9>&-
  elif have sudo; then
    if [[ -t 0 ]]; then sudo "$@" 9>&-; else sudo -n "$@" 9>&-; fi
  else
    die "root is needed for: $* (run as root or install sudo)"
  fi
}

as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@" 9>&-
  elif have sudo; then
    if [[ -t 0 ]]; then sudo -u postgres "$@" 9>&-; else sudo -n -u postgres "$@" 9>&-; fi
  else
    die "cannot run commands as the postgres user: run as root or install sudo"
  fi
}

_apt_updated=""
apt_install() {
  apt_try_install "$@" || die "$apt_failure; fix it and rerun (or install $* yourself)"
}

# apt_try_install PACKAGE...: like apt_install, but returns 1 with what failed in $apt_failure
# instead of ending the script, for callers that can explain more (pg_install).
apt_failure=""
apt_try_install() {
  apt_failure=""
  if ! have apt-get; then
    apt_failure="apt-get not found: these scripts install packages on Debian/Ubuntu only"
    return 1
  fi
  if [[ $(id -u) -ne 0 ]] && ! have sudo; then
    apt_failure="installing packages needs root, and sudo is not installed"
    return 1
  fi
  if [[ -z "$_apt_updated" ]]; then
    say "apt-get update"
    if ! as_root apt-get update -q; then
      apt_failure="apt-get update failed (network? package sources? sudo password?)"
      return 1
    fi
    _apt_updated=1
  fi
  say "apt-get install -y $*"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; then
    apt_failure="apt-get install -y $* failed (its output is above)"
    return 1
  fi
}

ensure_cargo() {
  if ! have cargo && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
  fi
  have cargo || die "cargo not found: install the Rust toolchain first (https://rustup.rs)"
}

# A C toolchain: librdkafka, libsql and aws-lc are built from source by cargo.
ensure_build_tools() {
  local missing=()
  have cc || missing+=(build-essential)
  have make || missing+=(build-essential)
  have pkg-config || missing+=(pkg-config)
  ((${#missing[@]} == 0)) && return 0
  apt_install "$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//')"
}

# promtool (Debian's `prometheus` package, 2.42 on bookworm) for the Prometheus config and rule
# checks in consumers/alerts/tests/prometheus.rs. Only the package: its service is not started here.
ensure_promtool() {
  have promtool && return 0
  apt_install --no-install-recommends prometheus
  have promtool || die "apt-get installed prometheus but promtool is missing"
}

# The Python packages tests use (pyarrow reads the Parquet files `studyspot replay` writes), pinned
# in deploy/local/test-requirements.txt, in a virtual environment of our own under the tools cache:
# Debian's system Python refuses `pip install` (externally managed, PEP 668), and nothing may rely
# on packages installed by hand. Reinstalled only when the requirements file changes. Exports
# STUDYSPOT_TEST_PYTHON, the interpreter tests run.
TEST_VENV="${STUDYSPOT_TEST_VENV:-$TOOLS_ROOT/venv}"
ensure_test_python() {
  local requirements="$STUDYSPOT_ROOT/deploy/local/test-requirements.txt" stamp want
  stamp="$TEST_VENV/.studyspot-requirements"
  want="$(sha256sum "$requirements" | cut -c1-16) $(python3 --version 2>&1 || true)"
  if [[ -x "$TEST_VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    export STUDYSPOT_TEST_PYTHON="$TEST_VENV/bin/python"
    return 0
  fi
  have python3 || apt_install python3
  # Debian and Ubuntu ship venv's ensurepip in a package of its own.
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  say "installing the tests' Python packages into $TEST_VENV"
  rm -rf "$TEST_VENV"
  mkdir -p "$(dirname "$TEST_VENV")"
  python3 -m venv "$TEST_VENV" || die "python3 -m venv $TEST_VENV failed"
  "$TEST_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" \
    || die "pip could not install $requirements into $TEST_VENV (PyPI reachable?)"
  printf '%s\n' "$want" >"$stamp"
  export STUDYSPOT_TEST_PYTHON="$TEST_VENV/bin/python"
  ok "Python packages for the tests in $TEST_VENV"
}

# rustfmt and clippy for `test` (rustup toolchains may lack them).
ensure_rust_components() {
  local missing=()
  cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
  ((${#missing[@]} == 0)) && return 0
  have rustup || die "cargo ${missing[*]} missing and rustup not found: install ${missing[*]}"
  say "rustup component add ${missing[*]}"
  rustup component add "${missing[@]}" || die "rustup component add ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------------------
# Addresses, ports, processes

addr_host() {
  local h="${1%:*}"
  h="${h#[}"
  h="${h%]}"
  case "$h" in "" | 0.0.0.0 | "*") h=127.0.0.1 ;; "::") h=::1 ;; esac
  printf '%s' "$h"
}
addr_port() { printf '%s' "${1##*:}"; }

is_local_host() {
  case "$1" in
    localhost | 127.* | ::1 | 0.0.0.0 | "" | "$(hostname 2>/dev/null || true)") return 0 ;;
  esac
  return 1
}

# Does something accept TCP connections on host port?
port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# "name (pid N)" of whatever listens on a port, when ss can tell.
port_owner() {
  local port=$1 line
  if have ss; then
    line="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n1 || true)"
    if [[ -n "$line" ]]; then
      line="${line#users:((\"}"
      printf '%s (pid %s)' "${line%%\",pid=*}" "${line##*pid=}"
      return
    fi
  fi
  printf 'an unknown process'
}

port_pid() {
  have ss || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true
}

# A Kafka ApiVersions v0 request; a Kafka broker answers with our correlation id ("SSPT").
kafka_probe() {
  local out
  out="$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x0c\x00\x12\x00\x00\x53\x53\x50\x54\x00\x02ss" >&3
    head -c 8 <&3 | od -An -tx1 | tr -d " \n"
  ' "$1" "$2" 2>/dev/null || true)"
  [[ "${out:8:8}" == "53535054" ]]
}

# A Kafka Metadata v1 request for no topics, which Tansu answers from its storage: true when the
# answer carries our correlation id and at least one broker. ApiVersions (kafka_probe) is answered
# without storage, so it passes even when the broker's storage task is gone and every other
# request fails.
kafka_storage_probe() {
  local out
  out="$(timeout "${3:-5}" bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x10\x00\x03\x00\x01\x53\x53\x50\x54\x00\x02ss\x00\x00\x00\x00" >&3
    head -c 12 <&3 | od -An -tx1 | tr -d " \n"
  ' "$1" "$2" 2>/dev/null || true)"
  [[ "${out:8:8}" == "53535054" && "${out:16:8}" != "00000000" && ${#out} -eq 24 ]]
}

# HTTP status code of GET http://addr/path ("000" when nothing answers).
http_code() {
  local addr=$1 path=$2 host port code
  host="$(addr_host "$addr")"
  port="$(addr_port "$addr")"
  [[ "$host" == *:* ]] && host="[$host]"
  if have curl; then
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$host:$port$path" 2>/dev/null || true)"
  else
    code="$(timeout 2 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
      head -n1 <&3
    ' "$(addr_host "$addr")" "$port" "$path" 2>/dev/null | awk '{print $2}' || true)"
  fi
  printf '%s' "${code:-000}"
}

# Body of GET http://addr/path (empty when nothing answers); needs curl.
http_body() {
  local host port
  host="$(addr_host "$1")"
  port="$(addr_port "$1")"
  [[ "$host" == *:* ]] && host="[$host]"
  have curl || return 0
  curl -s --max-time 2 "http://$host:$port$2" 2>/dev/null || true
}

pid_alive() {
  local pid=$1 state
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A zombie (nobody reaped it yet) has exited.
  state="$(proc_stat_field "$pid" 1)"
  [[ "$state" != "Z" ]]
}

# Field N of /proc/PID/stat counted after the command name: 1 state, 2 ppid, 3 process group.
proc_stat_field() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null || true)"
  stat="${stat##*) }"
  awk -v n="$2" '{print $n}' <<<"$stat"
}

# Signals a process, and its whole process group when it leads one (spawn starts each in its own
# session), so helpers it started go too.
signal_pid() {
  local sig=$1 pid=$2
  if [[ "$(proc_stat_field "$pid" 3)" == "$pid" ]]; then
    kill "-$sig" -- "-$pid" 2>/dev/null || true
  else
    kill "-$sig" "$pid" 2>/dev/null || true
  fi
}

# Is pid a live process running a binary called $2?
pid_runs() {
  local pid=$1 bin=$2 exe
  pid_alive "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  [[ "${exe##*/}" == "$bin" ]] && return 0
  # A script run by an interpreter: its name is the first or second argument.
  local arg
  while IFS= read -r arg; do
    [[ "${arg##*/}" == "$bin" ]] && return 0
  done < <(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n2 || true)
  return 1
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

read_pid() {
  local f
  f="$(pid_file "$1")"
  if [[ -s "$f" ]]; then tr -dc '0-9' <"$f"; fi
}

# Pid of our process `name` running binary `bin`, or nothing (and a stale pid file is removed).
our_pid() {
  local name=$1 bin=$2 pid
  pid="$(read_pid "$name")"
  [[ -z "$pid" ]] && return 0
  if pid_runs "$pid" "$bin"; then
    printf '%s' "$pid"
  else
    rm -f "$(pid_file "$name")"
  fi
}

# spawn NAME DIR CMD...: runs CMD in DIR in the background, in its own session (Ctrl-C in the
# terminal does not reach it), immune to hangups, output appended to logs/NAME.log, pid in run/NAME.pid.
spawn() {
  local name=$1 dir=$2 pidf log i
  shift 2
  pidf="$(pid_file "$name")"
  log="$(log_file "$name")"
  rm -f "$pidf"
  printf '\n=== %s started by deploy/local: %s\n' "$(date -Iseconds)" "$*" >>"$log"
  local launcher=()
  have setsid && launcher=(setsid)
  (
    cd "$dir"
    exec "${launcher[@]}" bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec nohup "$@"' "$pidf" "$@"
  ) </dev/null >>"$log" 2>&1 9>&- &
  for ((i = 0; i < 50; i++)); do
    [[ -s "$pidf" ]] && return 0
    sleep 0.1
  done
  die "$name did not start (no pid file after 5 s); see $log"
}

# stop_pid NAME PID: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 deadline
  signal_pid TERM "$pid"
  deadline=$((SECONDS + STOP_TIMEOUT))
  while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if pid_alive "$pid"; then
    warn "$name (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
    signal_pid KILL "$pid"
    for _ in 1 2 3 4 5 6 7 8 9 10; do pid_alive "$pid" || break; sleep 0.2; done
  fi
  pid_alive "$pid" && die "$name (pid $pid) survived SIGKILL"
  rm -f "$(pid_file "$name")"
  ok "stopped $name (pid $pid)"
}

tail_log() {
  local log=$1
  [[ -f "$log" ]] || return 0
  printf -- '--- last 20 lines of %s ---\n' "$log" >&2
  tail -n 20 "$log" >&2
  printf -- '---\n' >&2
}

# Fail early with a clear message when a port we are about to bind belongs to someone else.
require_free_port() {
  local what=$1 addr=$2 host port
  host="$(addr_host "$addr")"
  port="$(addr_port "$addr")"
  if port_open "$host" "$port"; then
    die "$(port_taken_message "$what" "$addr")"
  fi
}

# The variable that moves address ADDR of process NAME: a STUDYSPOT_* variable holding the address
# (or, for an SMTP-style HOST + PORT pair, the *PORT variable holding its port), else the consumer's
# STUDYSPOT_<NAME>_OPS_LISTEN, whose default lives in SERVICES.
addr_variable() {
  local name=$1 addr=$2 v port
  port="$(addr_port "$addr")"
  for v in $(compgen -v STUDYSPOT_); do
    [[ "$v" == STUDYSPOT_OPS_LISTEN ]] && continue
    if [[ "${!v}" == "$addr" ]]; then
      printf '%s' "$v"
      return
    fi
  done
  for v in $(compgen -v STUDYSPOT_); do
    if [[ "$v" == *PORT && "${!v}" == "$port" ]]; then
      printf '%s' "$v"
      return
    fi
  done
  v="${name^^}"
  printf 'STUDYSPOT_%s_OPS_LISTEN' "${v//-/_}"
}

# A port near PORT that nothing listens on (for the suggestion in port_taken_message).
free_port_near() {
  local host=$1 port=$2 p
  for p in $((port + 10000)) $((port + 10001)) $((port + 20000)) $((port - 10000)); do
    ((p > 1024 && p < 65536)) || continue
    port_open "$host" "$p" || {
      printf '%s' "$p"
      return
    }
  done
  printf '%s' "$((port + 1))"
}

# What to say when the address WHAT is to bind (ADDR) is taken: which port, which process holds it
# (when ss can tell), and the variable that moves it, with a free port as the example.
port_taken_message() {
  local what=$1 addr=$2 var=${3:-} host port free example
  host="$(addr_host "$addr")"
  port="$(addr_port "$addr")"
  [[ -n "$var" ]] || var="$(addr_variable "$what" "$addr")"
  free="$(free_port_near "$host" "$port")"
  case "$var" in
    PGPORT | *PORT) example="$var=$free" ;;
    *) example="$var=${addr%:*}:$free" ;;
  esac
  printf '%s: port %s (%s) is already taken by %s, which these scripts did not start.\n' \
    "$what" "$port" "$addr" "$(port_owner "$port")"
  printf '  Stop that process, or move %s to a free port with %s, e.g.\n      %s %s/deploy/local/up' \
    "$what" "$var" "$example" "$STUDYSPOT_ROOT"
}

# Every port `up` is to bind, checked before anything is built or started, so that a taken one is
# named at once (not after a long build). A PostgreSQL or Kafka broker answering on its port is
# used, and a process of ours keeps its port. Ends the script naming every taken port.
ports_preflight() {
  local problems=() host port entry a pid
  local svc_name svc_bin svc_addr svc_var svc_extra
  if is_local_host "$PGHOST" && port_open "$PGHOST" "$PGPORT" && ! pg_answers "$PGHOST" "$PGPORT"; then
    problems+=("$(port_taken_message PostgreSQL "$PGHOST:$PGPORT" PGPORT)")
  fi
  host="$(addr_host "$BROKER_ADDR")"
  port="$(addr_port "$BROKER_ADDR")"
  if is_local_host "$host" && [[ -z "$(broker_pid)" ]] && port_open "$host" "$port" && ! kafka_probe "$host" "$port"; then
    problems+=("$(port_taken_message broker "$BROKER_ADDR" STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS)")
  fi
  for entry in "${SERVICES[@]}"; do
    service_fields "$entry"
    pid="$(our_pid "$svc_name" "$svc_bin")"
    [[ -n "$pid" ]] && continue
    for a in "$svc_addr" $svc_extra; do
      if port_open "$(addr_host "$a")" "$(addr_port "$a")"; then
        problems+=("$(port_taken_message "$svc_name" "$a")")
      fi
    done
  done
  ((${#problems[@]} == 0)) && return 0
  printf '%s\n' "${problems[@]}" >&2
  die "$(printf '%s port(s) taken (above); nothing was started' "${#problems[@]}")"
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL

pg_accepting() {
  if have pg_isready; then
    pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2 >/dev/null 2>&1
  else
    port_open "$PGHOST" "$PGPORT"
  fi
}

# Does a PostgreSQL server answer on host port (accepting connections, or still starting)?
pg_answers() {
  if have pg_isready; then
    local rc=0
    pg_isready -q -h "$1" -p "$2" -t 2 >/dev/null 2>&1 || rc=$?
    ((rc == 0 || rc == 1))
  else
    port_open "$1" "$2"
  fi
}

pg_wait() {
  local deadline=$((SECONDS + ${1:-30}))
  until pg_accepting; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

pg_newest_version() {
  local d v=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x "$d" ]] || continue
    d="${d#/usr/lib/postgresql/}"
    v="$(printf '%s\n%s\n' "$v" "${d%%/*}" | sed '/^$/d' | sort -V | tail -n1)"
  done
  printf '%s' "$v"
}

# "version name status logfile" of the Debian cluster on PGPORT, if any.
pg_cluster_on_port() {
  have pg_lsclusters || return 0
  pg_lsclusters -h 2>/dev/null | awk -v p="$PGPORT" '$3 == p {print $1, $2, $4, $7; exit}'
}

# Installs the PostgreSQL server from the OS packages, or ends with what failed and the two ways on.
pg_install() {
  apt_try_install postgresql || pg_install_failed "$apt_failure"
  hash -r
}

pg_install_failed() {
  die "PostgreSQL is needed on $PGHOST:$PGPORT and could not be installed: $1.
  Either install it yourself and run up again:
      sudo apt-get update && sudo apt-get install -y postgresql
    (elsewhere than Debian/Ubuntu: your system's PostgreSQL package; up creates and starts a cluster
    on port $PGPORT with pg_createcluster when one is missing, or uses any server answering there)
  or use a PostgreSQL server you already run, e.g. on port 5433:
      PGPORT=5433 $STUDYSPOT_ROOT/deploy/local/up
    on this machine up creates the roles and the database as the postgres OS user; on another host
    (PGHOST=db.example PGPORT=5432) create roles studyspot and studyspot_gateway and database studyspot
    yourself (pg_provision in deploy/local/lib.sh has the SQL), or point the processes at your own with
    STUDYSPOT_POSTGRES__URL and STUDYSPOT_POSTGRES__READONLY_URL."
}

# Makes sure a PostgreSQL server answers on PGHOST:PGPORT: installs it from the OS packages and
# creates and starts a cluster when needed. A cluster started here is recorded in run/postgres.started.
pg_ensure() {
  if pg_accepting; then
    ok "PostgreSQL answers on $PGHOST:$PGPORT"
    return 0
  fi
  if port_open "$PGHOST" "$PGPORT"; then
    pg_wait 15 && {
      ok "PostgreSQL answers on $PGHOST:$PGPORT"
      return 0
    }
    die "$PGHOST:$PGPORT is taken by $(port_owner "$PGPORT"), which does not answer as PostgreSQL; stop it or set PGPORT"
  fi
  is_local_host "$PGHOST" \
    || die "PostgreSQL at $PGHOST:$PGPORT does not answer (not on this machine, so not installing one)"

  if ! have pg_ctlcluster || [[ -z "$(pg_newest_version)" ]]; then
    say "no PostgreSQL server found: installing it from the OS packages"
    pg_install
  fi
  have pg_ctlcluster || pg_install_failed "pg_ctlcluster was not found after installing postgresql (Debian/Ubuntu's postgresql-common is expected)"

  local cluster ver name status logfile
  cluster="$(pg_cluster_on_port)"
  if [[ -z "$cluster" ]]; then
    ver="$(pg_newest_version)"
    [[ -n "$ver" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql after installing"
    # main, else studyspot, else studyspot_PORT: the names taken are clusters on other ports.
    local candidate
    for candidate in main studyspot "studyspot_$PGPORT"; do
      name=$candidate
      pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n {f=1} END {exit !f}' || break
    done
    say "creating PostgreSQL cluster $ver/$name on port $PGPORT"
    as_root pg_createcluster --port "$PGPORT" "$ver" "$name" >/dev/null \
      || die "pg_createcluster $ver $name failed"
    cluster="$(pg_cluster_on_port)"
  fi
  read -r ver name status logfile <<<"$cluster"
  if [[ "$status" != online* ]]; then
    say "starting PostgreSQL cluster $ver/$name"
    if ! as_root pg_ctlcluster "$ver" "$name" start; then
      if [[ -n "$logfile" ]]; then as_root tail -n 20 "$logfile" >&2 || true; fi
      die "could not start PostgreSQL cluster $ver/$name"
    fi
    printf '%s %s\n' "$ver" "$name" >"$RUN_DIR/postgres.started"
  fi
  pg_wait 30 || die "PostgreSQL cluster $ver/$name started but $PGHOST:$PGPORT does not answer (listen_addresses?)"
  ok "PostgreSQL $ver/$name answers on $PGHOST:$PGPORT"
}

# Roles, database and schemas (idempotent). Run as the postgres OS user over the local socket.
PG_CONSUMER_SCHEMAS=(billing notifications attendance alerts)
pg_provision() {
  if ! is_local_host "$PGHOST"; then
    warn "PostgreSQL is not on this machine: skipping role/database setup (create roles studyspot and studyspot_gateway yourself)"
    return 0
  fi
  local schemas grants
  schemas="$(printf 'CREATE SCHEMA IF NOT EXISTS %s AUTHORIZATION studyspot;\n' "${PG_CONSUMER_SCHEMAS[@]}")"
  grants="$(printf '%s, ' "${PG_CONSUMER_SCHEMAS[@]}")"
  grants="${grants%, }"
  local sql
  sql="$(
    cat <<SQL
SET client_min_messages = warning;
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'studyspot') THEN
    CREATE ROLE studyspot LOGIN PASSWORD 'studyspot' CREATEDB CREATEROLE;
  ELSE
    ALTER ROLE studyspot LOGIN PASSWORD 'studyspot' CREATEDB CREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'studyspot_gateway') THEN
    CREATE ROLE studyspot_gateway LOGIN PASSWORD 'studyspot_gateway';
  ELSE
    ALTER ROLE studyspot_gateway LOGIN PASSWORD 'studyspot_gateway';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE studyspot OWNER studyspot'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'studyspot') \gexec
ALTER DATABASE studyspot OWNER TO studyspot;
GRANT CONNECT ON DATABASE studyspot TO studyspot_gateway;
\connect studyspot
SET client_min_messages = warning;
$schemas
GRANT USAGE ON SCHEMA $grants TO studyspot_gateway;
GRANT SELECT ON ALL TABLES IN SCHEMA $grants TO studyspot_gateway;
ALTER DEFAULT PRIVILEGES FOR ROLE studyspot GRANT SELECT ON TABLES TO studyspot_gateway;
SQL
  )"
  local out
  if ! out="$(as_postgres env -u PGHOST -u PGUSER -u PGDATABASE -u PGPASSWORD \
    psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d postgres <<<"$sql" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "could not set up the studyspot roles and database as the postgres user (port $PGPORT)"
  fi
  ok "roles studyspot, studyspot_gateway; database studyspot; schemas ${PG_CONSUMER_SCHEMAS[*]}"
}

# Tests create a database each (t_<uuid>, gw_<uuid>, reg_<uuid>, …) and cannot drop it when they
# end, so leftovers pile up (1,400 databases and 12 GB after a few days) and PostgreSQL's crash
# recovery fsyncs them all. The id is a UUIDv7, whose first 48 bits are its creation time in ms:
# databases older than STUDYSPOT_TEST_DB_MAX_AGE_MINUTES (120) are dropped, so a test running
# now keeps its own. One in use is skipped (DROP without FORCE fails).
pg_drop_stale_test_databases() {
  local max_age="${STUDYSPOT_TEST_DB_MAX_AGE_MINUTES:-120}" url="${STUDYSPOT_POSTGRES__URL:?}"
  psql -X -q "$url" >/dev/null 2>&1 <<SQL || true
SELECT format('DROP DATABASE IF EXISTS %I', datname) FROM pg_database
WHERE datname ~ '^[a-z]+_[0-9a-f]{32}\$'
  AND to_timestamp(('x' || lpad(substring(datname from '_([0-9a-f]{12})'), 16, '0'))::bit(64)::bigint / 1000.0)
      < now() - make_interval(mins => $max_age)
\\gexec
SQL
}

# Connection strings the Rust processes and the tests use, following PGHOST/PGPORT.
pg_export_urls() {
  local hp="$PGHOST:$PGPORT"
  [[ "$PGHOST" == *:* ]] && hp="[$PGHOST]:$PGPORT"
  default_env STUDYSPOT_POSTGRES__URL "postgres://studyspot:studyspot@$hp/studyspot"
  default_env STUDYSPOT_POSTGRES__READONLY_URL "postgres://studyspot_gateway:studyspot_gateway@$hp/studyspot"
}

pg_stop_if_ours() {
  local f="$RUN_DIR/postgres.started" ver name
  [[ -s "$f" ]] || return 0
  read -r ver name <"$f"
  if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n && $4 ~ /^online/ {f=1} END {exit !f}'; then
    as_root pg_ctlcluster "$ver" "$name" stop || die "could not stop PostgreSQL cluster $ver/$name"
    ok "stopped PostgreSQL $ver/$name (started by up)"
  fi
  rm -f "$f"
}

# ---------------------------------------------------------------------------------------------------
# Broker (Tansu, Kafka wire protocol, SQLite storage in $STUDYSPOT_HOME/broker/tansu.db)

# Tansu is built from its crates.io sources with our patch to tansu-storage applied
# (deploy/local/tansu/README.md says what it fixes and why). The build is recorded in a stamp file
# next to the binary: it is redone only when the version or the patch changes.
TANSU_PATCH_DIR="$STUDYSPOT_ROOT/deploy/local/tansu"
TANSU_STAMP="$TOOLS_ROOT/tansu.stamp"

# Crates in the broker binary that the local broker never runs on its request path: the other
# subcommands (cat, generator, perf, proxy), TLS and HTTP clients, object stores, scripting, schema
# formats. They build unoptimised (the C ones at -O0 too); the protocol, storage, SQLite, lz4,
# tokio and telemetry keep opt-level 3. The broker's CPU went from 27.7 to 21.3 minutes to build, and
# `bench hop` reads the same latencies and broker CPU per record either way (deploy/README.md).
TANSU_COLD_CRATES=(
  aws-lc-sys aws-lc-rs ring rustls rustls-webpki reqwest hickory-proto hickory-resolver object_store
  rhai rhai-rand rama-http rama-http-headers rama-http-types rama-ua rama-dns
  protobuf protobuf-parse protobuf-json-mapping protobuf-support jsonschema referencing fancy-regex
  apache-avro num-bigint bigdecimal zstd-sys psl quick-xml rsasl opentelemetry-proto opentelemetry-otlp
  tonic clap_builder tansu-generator tansu-perf tansu-proxy tansu-cat tansu-cli
)

# "tansu VERSION patch HASH": what the installed binary must have been built from.
tansu_build_id() {
  local hash
  hash="$(cat "$TANSU_PATCH_DIR"/*.patch | sha256sum | cut -c1-16)"
  printf 'tansu %s patch %s' "$TANSU_VERSION" "$hash"
}

# Directory of the published sources of crate $1 at TANSU_VERSION in cargo's registry cache.
_tansu_crate_dir() {
  local d
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$TANSU_VERSION"; do
    if [[ -f "$d/Cargo.toml" ]]; then
      printf '%s' "$d"
      return 0
    fi
  done
  die "cargo did not download $1 $TANSU_VERSION (see $LOG_DIR/tansu-install.log)"
}

# True when tansu_ensure would build: no binary of ours yet, or one built from another version or patch.
tansu_needs_build() {
  [[ "$TANSU_BIN" == "$TANSU_DEFAULT_BIN" ]] || return 1
  [[ -x "$TANSU_BIN" && -f "$TANSU_STAMP" && "$(cat "$TANSU_STAMP")" == "$(tansu_build_id)" ]] && return 1
  return 0
}

# What the broker build needs installed (apt runs here, never from a build in the background).
tansu_prereqs() {
  ensure_cargo
  ensure_build_tools
  have patch || apt_install patch
}

tansu_ensure() {
  if [[ "$TANSU_BIN" != "$TANSU_DEFAULT_BIN" ]]; then
    [[ -x "$TANSU_BIN" ]] || die "STUDYSPOT_TANSU_BIN=$TANSU_BIN is not an executable file"
    return 0
  fi
  local want
  want="$(tansu_build_id)"
  tansu_needs_build || return 0
  tansu_prereqs
  mkdir -p "$TOOLS_ROOT"
  # One build at a time; a second caller waits and finds it done.
  local lock_fd
  exec {lock_fd}>"$TOOLS_ROOT/tansu.lock"
  if have flock; then flock "$lock_fd"; fi
  if [[ -x "$TANSU_BIN" && -f "$TANSU_STAMP" && "$(cat "$TANSU_STAMP")" == "$want" ]]; then
    exec {lock_fd}>&-
    return 0
  fi
  _tansu_build "$want"
  exec {lock_fd}>&-
}

_tansu_build() {
  local want=$1 log="$LOG_DIR/tansu-install.log" src="$TOOLS_ROOT/src/tansu-$TANSU_VERSION"
  mkdir -p "$LOG_DIR"
  : >"$log"
  say "building the broker ($want) from crates.io into $TOOLS_ROOT"
  say "this is a long build: about 25 minutes on 2 cores beside the workspace build (output also in $log)"

  # The published sources, fetched by cargo. tansu is a binary crate, which no manifest can
  # depend on, so cargo install downloads it: asked for a feature no crate has, it stops after
  # unpacking the sources into its registry cache and before building anything.
  rm -rf "$src"
  mkdir -p "$src"
  cargo install tansu --version "$TANSU_VERSION" --locked --features studyspot-fetch-only \
    --root "$src/none" >>"$log" 2>&1 || true
  cp -R "$(_tansu_crate_dir tansu)" "$src/tansu"
  chmod -R u+w "$src/tansu"
  # Every locked dependency, tansu-storage among them (checksums verified against the lock).
  cargo fetch --locked --manifest-path "$src/tansu/Cargo.toml" >>"$log" 2>&1 \
    || die "cargo could not fetch tansu $TANSU_VERSION's dependencies from crates.io; see $log"
  cp -R "$(_tansu_crate_dir tansu-storage)" "$src/tansu-storage"
  chmod -R u+w "$src/tansu-storage"

  local p
  for p in "$TANSU_PATCH_DIR"/tansu-storage-"$TANSU_VERSION"*.patch; do
    patch -d "$src/tansu-storage" -p1 --forward --batch -s <"$p" >>"$log" 2>&1 \
      || die "the patch $p does not apply to tansu-storage $TANSU_VERSION; see $log"
  done

  # The binary crate builds against the patched tansu-storage. Its published Cargo.lock is kept
  # (--locked) except the one entry that now comes from a path: no source, no checksum.
  cat >>"$src/tansu/Cargo.toml" <<TOML

[patch.crates-io]
tansu-storage = { path = "../tansu-storage" }

[workspace]
TOML
  local crate
  for crate in "${TANSU_COLD_CRATES[@]}"; do
    printf '\n[profile.release.package.%s]\nopt-level = 0\n' "$crate" >>"$src/tansu/Cargo.toml"
  done
  awk '
    /^\[\[package\]\]/ { inpkg = 0 }
    $0 == "name = \"tansu-storage\"" { inpkg = 1 }
    inpkg && /^(source|checksum) = / { next }
    { print }
  ' "$src/tansu/Cargo.lock" >"$src/tansu/Cargo.lock.new"
  mv "$src/tansu/Cargo.lock.new" "$src/tansu/Cargo.lock"

  rm -f "$TANSU_STAMP"
  # Its own target directory: the workspace can build at the same time (one target directory
  # builds one thing at a time), and a rebuild after a patch change reuses the dependencies.
  # TANSU_BUILD_QUIET (a build in the background): cargo's output to the log only.
  local started=$SECONDS
  if ! cargo install --path "$src/tansu" --locked --force --features libsql --root "$TOOLS_ROOT" \
    --target-dir "$TOOLS_ROOT/target" 2>&1 | if [[ -n "${TANSU_BUILD_QUIET:-}" ]]; then cat >>"$log"; else tee -a "$log"; fi; then
    tail_log "$log"
    die "building tansu $TANSU_VERSION with the patch failed; see $log"
  fi
  [[ -x "$TANSU_BIN" ]] || die "cargo install finished but $TANSU_BIN is missing"
  printf '%s\n' "$want" >"$TANSU_STAMP"
  ok "installed $want ($TANSU_BIN) in $((SECONDS - started)) s"
}

# The broker builds in the background while `up` sets up PostgreSQL and builds the workspace
# (broker_build_start, then broker_build_wait before the broker starts): on 2 cores the two builds
# together fill each other's serial stretches (C libraries, the last crates, linking).
# STUDYSPOT_BUILD_OVERLAP=0 builds it first, alone (a machine short of memory).
_broker_build_pid=""
broker_build_start() {
  local host port
  host="$(addr_host "$BROKER_ADDR")"
  port="$(addr_port "$BROKER_ADDR")"
  # Nothing to build when another broker is used, or ours already runs (restarting it is for later).
  is_local_host "$host" || return 0
  [[ -z "$(broker_pid)" ]] || return 0
  port_open "$host" "$port" && return 0
  tansu_needs_build || return 0
  tansu_prereqs
  if [[ "${STUDYSPOT_BUILD_OVERLAP:-1}" == 0 ]]; then
    tansu_ensure
    return 0
  fi
  mkdir -p "$LOG_DIR"
  say "building the broker in the background (log $LOG_DIR/tansu-install.log)"
  # Its own process group, so that it can be stopped whole if `up` ends first.
  set -m
  (TANSU_BUILD_QUIET=1 tansu_ensure) 9>&- &
  _broker_build_pid=$!
  set +m
  trap '_broker_build_abort' EXIT
  trap '_broker_build_abort; exit 130' INT
  trap '_broker_build_abort; exit 143' TERM
}

broker_build_wait() {
  [[ -n "$_broker_build_pid" ]] || return 0
  local pid=$_broker_build_pid rc=0
  if pid_alive "$pid"; then say "waiting for the broker build (log $LOG_DIR/tansu-install.log)"; fi
  wait "$pid" || rc=$?
  _broker_build_pid=""
  ((rc == 0)) || die "the broker build failed (exit $rc); see $LOG_DIR/tansu-install.log"
}

_broker_build_abort() {
  [[ -n "$_broker_build_pid" ]] || return 0
  if pid_alive "$_broker_build_pid"; then
    kill -TERM -- "-$_broker_build_pid" 2>/dev/null || true
    warn "stopped the broker build in the background; the next up starts it again"
  fi
  _broker_build_pid=""
}

broker_pid() { our_pid broker tansu; }

# Does the broker serve requests that need its storage? Tries for up to $3 seconds (a busy Tansu
# queues storage requests behind one another, so one slow answer proves nothing).
broker_serving() {
  local host=$1 port=$2 deadline=$((SECONDS + ${3:-30}))
  until kafka_storage_probe "$host" "$port" 10; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# Makes sure a Kafka-compatible broker answers on the first bootstrap server; starts ours if none
# does. Ours is restarted when it listens but does not serve (its storage failed); the store is
# kept, unless BROKER_FRESH_STORE is set (the tests' broker), which wipes it whenever the broker
# is (re)started here.
broker_ensure() {
  local host port pid
  host="$(addr_host "$BROKER_ADDR")"
  port="$(addr_port "$BROKER_ADDR")"
  pid="$(broker_pid)"
  if [[ -z "$pid" ]] && port_open "$host" "$port"; then
    if kafka_probe "$host" "$port"; then
      broker_serving "$host" "$port" 10 \
        || warn "the broker on $BROKER_ADDR answers ApiVersions but not Metadata"
      ok "a Kafka-compatible broker not started by these scripts answers on $BROKER_ADDR ($(port_owner "$port")); using it"
      return 0
    fi
    die "$BROKER_ADDR is taken by $(port_owner "$port"), which is not a Kafka broker; stop it or set STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS"
  fi
  if [[ -n "$pid" ]] && ! broker_serving "$host" "$port" 30; then
    warn "the broker (pid $pid) on $BROKER_ADDR does not answer a Metadata request within 30 s: restarting it"
    tail_log "$(log_file broker)"
    stop_pid broker "$pid"
    pid=""
  fi
  if [[ -z "$pid" ]]; then
    is_local_host "$host" \
      || die "the broker at $BROKER_ADDR does not answer (not on this machine, so not starting one)"
    tansu_ensure
    if [[ -n "${BROKER_FRESH_STORE:-}" ]]; then rm -f "$BROKER_DIR"/tansu.db*; fi
    say "starting the broker on $BROKER_ADDR (data: $BROKER_DIR/tansu.db)"
    # Tansu 0.6 resolves sqlite://NAME against its working directory (an absolute path in the URL is
    # joined to it too), so it runs in the broker directory with a relative URL.
    spawn broker "$BROKER_DIR" "$TANSU_BIN" broker \
      --listener-url "tcp://$BROKER_ADDR" \
      --advertised-listener-url "tcp://$BROKER_ADDR" \
      --storage-engine "sqlite://tansu.db"
    pid="$(read_pid broker)"
  fi
  local deadline=$((SECONDS + 30))
  until kafka_storage_probe "$host" "$port" 5; do
    if ! pid_alive "$pid" || ((SECONDS >= deadline)); then
      tail_log "$(log_file broker)"
      die "the broker did not come up on $BROKER_ADDR"
    fi
    sleep 0.3
  done
  ok "broker answers on $BROKER_ADDR (pid $pid)"
}

broker_stop() {
  local pid
  pid="$(broker_pid)"
  [[ -n "$pid" ]] && stop_pid broker "$pid"
  return 0
}

# ---------------------------------------------------------------------------------------------------
# Rust services

service_bin_path() { printf '%s/%s' "$RELEASE_DIR" "$1"; }

# service_start ENTRY: starts one SERVICES entry unless it already runs. A running one is restarted
# when its binary is newer than its pid file (i.e. rebuilt since it started). Sets svc_missing=1
# (and starts nothing) when the workspace has no such binary yet.
svc_missing=""
service_start() {
  local svc_name svc_bin svc_addr svc_var svc_extra
  service_fields "$1"
  local bin pid extra
  bin="$(service_bin_path "$svc_bin")"
  pid="$(our_pid "$svc_name" "$svc_bin")"
  svc_missing=""
  if [[ ! -x "$bin" ]]; then
    if [[ -n "$pid" ]]; then
      warn "$svc_name: $bin is gone; leaving the running one (pid $pid) alone"
      return 0
    fi
    warn "$svc_name: no binary $svc_bin in the workspace yet ($bin); skipping it"
    svc_missing=1
    return 0
  fi
  if [[ -n "$pid" ]]; then
    if [[ "$bin" -nt "$(pid_file "$svc_name")" ]]; then
      say "$svc_name: binary rebuilt since it started; restarting"
      stop_pid "$svc_name" "$pid"
    else
      ok "$svc_name already running (pid $pid)"
      return 0
    fi
  fi
  require_free_port "$svc_name" "$svc_addr"
  for extra in $svc_extra; do require_free_port "$svc_name" "$extra"; done
  spawn "$svc_name" "$STUDYSPOT_HOME" env "$svc_var=$svc_addr" "$bin"
  say "started $svc_name (pid $(read_pid "$svc_name"), log $(log_file "$svc_name"))"
}

# services_wait_ready ENTRY...: polls each /ready until 200; a dead process or the deadline fails
# with the last log lines.
services_wait_ready() {
  local -a pending=("$@") still
  local deadline=$((SECONDS + READY_TIMEOUT)) e code pid
  local svc_name svc_bin svc_addr svc_var svc_extra
  while ((${#pending[@]} > 0)); do
    still=()
    for e in "${pending[@]}"; do
      service_fields "$e"
      pid="$(read_pid "$svc_name")"
      if ! pid_alive "$pid"; then
        tail_log "$(log_file "$svc_name")"
        die "$svc_name exited before it was ready"
      fi
      code="$(http_code "$svc_addr" /ready)"
      if [[ "$code" == 200 ]]; then
        ok "$svc_name ready on http://$svc_addr/ready"
      else
        still+=("$e")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for e in "${pending[@]}"; do
        service_fields "$e"
        printf '%s: http://%s/ready answered %s\n' "$svc_name" "$svc_addr" "$(http_code "$svc_addr" /ready)" >&2
        tail_log "$(log_file "$svc_name")"
      done
      die "not ready after ${READY_TIMEOUT}s: $(for e in "${pending[@]}"; do service_fields "$e"; printf '%s ' "$svc_name"; done)"
    fi
    sleep 0.5
  done
}

services_stop() {
  local i svc_name svc_bin svc_addr svc_var svc_extra pid
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    service_fields "${SERVICES[i]}"
    pid="$(our_pid "$svc_name" "$svc_bin")"
    [[ -n "$pid" ]] && stop_pid "$svc_name" "$pid"
  done
  return 0
}

# ---------------------------------------------------------------------------------------------------
# Infrastructure shared by up and test

infra_ensure() {
  ensure_dirs
  pg_ensure
  pg_provision
  pg_export_urls
  broker_ensure
}

# Names used by the first version of these scripts (deploy/local/bench may still call them).
REPO="$STUDYSPOT_ROOT"
KAFKA="$BROKER_ADDR"
ensure_postgres() {
  ensure_dirs
  pg_ensure
  pg_provision
  pg_export_urls
}
start_broker() {
  ensure_dirs
  broker_ensure
}
