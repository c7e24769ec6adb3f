# The verbs a developer types. Every recipe forwards to something that works without `just`
# (deploy/local/install-just installs it: `pip install rust-just`, or cargo as a fallback).

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

# List the recipes.
default:
    @just --list

# Start the whole local stack and show a demo (--no-demo skips it, --no-build uses existing binaries).
up *args:
    ./deploy/local/up "$@"

# Stop what `up` started, keeping data.
down:
    ./deploy/local/down

# What runs where; fails when something expected is down.
status:
    ./deploy/local/status

# fmt, clippy and every test against PostgreSQL and the broker (extra args go to cargo test).
test *args:
    ./deploy/local/test "$@"

# Benchmarks that print figures: `just bench bus`, `just bench gateway`, `just bench renewals --subscriptions N`,
# `just bench system [--json]` (the whole system beside its limits); starts PostgreSQL and the broker when needed.
bench *args:
    ./deploy/local/bench "$@"

# The chaos soak: mixed load while every consumer, the gateway, the broker and PostgreSQL are SIGKILLed,
# then the invariant checker (`just soak --minutes 10 --seed 42`); its own PostgreSQL, broker and ports.
soak *args:
    ./deploy/local/soak "$@"

# Follow one process's log: `just logs broker`, `just logs attendance`.
logs name:
    tail -n 50 -F "${STUDYSPOT_HOME:-$HOME/.local/share/studyspot}/logs/$1.log"

# psql as the writer role.
psql:
    PGPASSWORD=studyspot psql -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U studyspot studyspot

# The operator CLI: `just studyspot topics list`.
studyspot *args:
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/studyspot-target}" cargo run --quiet --release -p studyspot-cli -- "$@"

# A slice of the event history as NDJSON, CSV or Parquet, or copied to another topic:
# `just replay -t studyspot.attendance.events.v1 --format parquet -o out/` (see `studyspot replay --help`).
replay *args:
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/studyspot-target}" cargo run --quiet --release -p studyspot-cli -- replay "$@"

# Rebuilds a consumer's projection from history beside the live one and swaps it in:
# `just rebuild billing` (`--no-swap` to leave it beside; see `studyspot rebuild --help`).
rebuild consumer *args:
    target="${CARGO_TARGET_DIR:-$HOME/.cache/studyspot-target}"; CARGO_TARGET_DIR="$target" cargo build --quiet --release -p studyspot-cli -p "studyspot-$1" && "$target/release/studyspot" rebuild "$@"
