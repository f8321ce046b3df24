#!/usr/bin/env bash
# A guided tour for learners. Each lesson explains what it is about, runs the
# real programs with the commands a learner would type, shows what they
# printed, and says what they just measured: every "what you just saw" line is
# computed from this run's output, and a lesson fails (with the reason) when a
# claim it makes does not hold on this run.
#
# Usage: scripts/tour.sh [--pause] [N ...]
#        scripts/tour.sh --list
#   N        run lesson N (several: in that order); no N runs every lesson
#   --pause  wait for Enter between steps (for a classroom)
#   --list   list the lessons and exit
#
# It builds the release binaries and examples once (quietly), then runs them.
# The files of lesson N are kept in target/tour/N/. Nothing is left in
# /dev/shm or in the socket directory, even when a lesson fails. Exit status:
# 0 when every lesson run passed, 1 when one failed, 2 for a usage error,
# 130 when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

# The lessons: number|title|what it shows|function.
LESSONS=(
  "1|Two copies against one|the same image over shm, unix and tcp, with the kernel's counters|lesson_1"
  "2|Exclusive access|P2 waits while P1 holds the lock (--hold), in both start orders|lesson_2"
  "3|Lost updates|Python's Value example; += from several processes, with and without the lock|lesson_3"
  "4|A holder dies|P1 is killed holding the lock: P2 learns it at once and names the pid|lesson_4"
  "5|The hardened way|a sealed memfd: shrinking or writing the received memory is refused|lesson_5"
  "6|Streams|frames to three readers, one stopped, the writer not slowed; fps and latency|lesson_6"
  "7|Where shared memory does not win|a cold segment per message; a blocking round trip across CPUs|lesson_7"
)

BIN=target/release
WORK=target/tour
LIMIT=20 # --timeout of every program, in seconds
PAUSE=0

usage() {
  cat <<'EOF'
Usage: scripts/tour.sh [--pause] [N ...]
       scripts/tour.sh --list
  N        run lesson N (several: in that order); no N runs every lesson
  --pause  wait for Enter between steps (for a classroom)
  --list   list the lessons and exit
EOF
}

# ---------------------------------------------------------------------------
# Output: colour on a terminal, plain text in a pipe.

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
  BOLD=$'\e[1m' DIM=$'\e[2m' CMD=$'\e[1;36m' SAW=$'\e[32m' P1C=$'\e[34m' P2C=$'\e[35m'
  WARN=$'\e[33m' OFF=$'\e[0m'
else
  BOLD='' DIM='' CMD='' SAW='' P1C='' P2C='' WARN='' OFF=''
fi
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
  BAD=$'\e[1;31m' EOFF=$'\e[0m'
else
  BAD='' EOFF=''
fi

field() { # field N LINE: the Nth |-separated field of a lesson line
  local parts
  IFS='|' read -r -a parts <<<"$2"
  printf '%s' "${parts[$1]:-}"
}

list() {
  local line
  for line in "${LESSONS[@]}"; do
    printf '%s  %-34s %s\n' "$(field 0 "$line")" "$(field 1 "$line")" "$(field 2 "$line")"
  done
}

pause() {
  [ "$PAUSE" = 1 ] || return 0
  printf '%s[Enter]%s ' "$DIM" "$OFF"
  read -r _ || true
}

explain() { # the lesson's few lines of explanation, one argument each
  local line
  for line in "$@"; do printf '  %s\n' "$line"; done
  pause
}

step() {
  printf '\n%s-- %s%s\n' "$BOLD" "$*" "$OFF"
}

# How a learner types a program of this tour: the binaries by name (they are
# target/release/NAME), the examples through cargo.
typed() {
  local prog=$1
  shift
  case $prog in
    value | race)
      if [ $# -gt 0 ]; then
        printf 'cargo run --release -p common --example %s -- %s' "$prog" "$*"
      else
        printf 'cargo run --release -p common --example %s' "$prog"
      fi
      ;;
    *) printf '%s' "$prog${*:+ $*}" ;;
  esac
}

path_of() {
  case $1 in
    value | race) printf '%s/examples/%s' "$BIN" "$1" ;;
    producer | consumer | p1p2-bench) printf '%s/%s' "$BIN" "$1" ;;
    *) printf '%s' "$1" ;;
  esac
}

show_cmd() { # show_cmd SUFFIX PROG ARGS...: "$ PROG ARGS SUFFIX"
  local suffix=$1
  shift
  printf '%s$ %s%s%s\n' "$CMD" "$(typed "$@")" "${suffix:+ $suffix}" "$OFF"
}

# Prints a file of program output with a gutter; story lines of P1 and P2 in
# their colours.
show_output() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      "P1 producer |"*) printf '  %s│%s %s%s%s\n' "$DIM" "$OFF" "$P1C" "$line" "$OFF" ;;
      "P2 consumer |"*) printf '  %s│%s %s%s%s\n' "$DIM" "$OFF" "$P2C" "$line" "$OFF" ;;
      *) printf '  %s│%s %s\n' "$DIM" "$OFF" "$line" ;;
    esac
  done <"$1"
}

# show_json LABEL FILE KEY...: the keys this lesson reads from a --json
# object, one a line ("a.b" keeps only b of object a).
show_json() {
  local label=$1 file=$2
  shift 2
  printf '  %s│%s %s%s%s\n' "$DIM" "$OFF" "$DIM" "$label --json, the fields this lesson reads:" "$OFF"
  python3 - "$file" "$@" <<'PY' | while IFS= read -r line; do printf '  %s│%s %s\n' "$DIM" "$OFF" "$line"; done
import json, sys
with open(sys.argv[1]) as f:
    obj = json.loads([l for l in f if l.strip()][-1])
picked = {}
for key in sys.argv[2:]:
    top, _, sub = key.partition(".")
    if top not in obj:
        continue
    if sub and isinstance(obj[top], dict):
        picked.setdefault(top, {})[sub] = obj[top].get(sub)
    elif not sub:
        picked[top] = obj[top]
for key, value in picked.items():
    print(f'"{key}": {json.dumps(value, ensure_ascii=False)}')
PY
}

# ---------------------------------------------------------------------------
# Running the programs. Inside a lesson (a subshell), every process started
# in the background is remembered until it is reaped, so that the lesson's
# exit, however it happens, kills what is left of it (by pid) and removes
# its files.

RUNNING=()

fail() {
  printf '%sLESSON %s FAILED:%s %s\n' "$BAD" "${LESSON:-?}" "$EOFF" "$*" >&2
  [ -n "${LESSON_DIR:-}" ] && printf '%s\n' "$*" >"$LESSON_DIR/failure"
  exit 1
}

launch() { # launch OUT ERR PROG ARGS...: in the background; sets LAUNCHED
  local out=$1 err=$2 prog=$3
  shift 3
  if [ "$out" = "$err" ]; then
    "$(path_of "$prog")" "$@" </dev/null >>"$out" 2>&1 &
  else
    "$(path_of "$prog")" "$@" </dev/null >"$out" 2>"$err" &
  fi
  LAUNCHED=$!
  RUNNING+=("$LAUNCHED")
}

forget() {
  local pid kept=()
  for pid in "${RUNNING[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  RUNNING=("${kept[@]}")
}

# reap PID SECS: waits for a process started by launch, at most SECS; sets
# STATUS to its exit status.
reap() {
  local pid=$1 secs=$2 waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((secs * 50)) ]; then
      fail "pid $pid still ran after ${secs} s"
    fi
    sleep 0.02
    waited=$((waited + 1))
  done
  STATUS=0
  wait "$pid" || STATUS=$?
  forget "$pid"
}

# run_fg OUT ERR PROG ARGS...: in the foreground (bounded by the program's
# own --timeout and by reap); sets STATUS.
run_fg() {
  launch "$@"
  reap "$LAUNCHED" $((LIMIT + 10))
}

# until_true SECS WHAT COMMAND...: polls COMMAND every 20 ms for SECS.
until_true() {
  local secs=$1 what=$2 tries=0
  shift 2
  until "$@"; do
    if [ "$tries" -ge $((secs * 50)) ]; then
      fail "waited ${secs} s for $what"
    fi
    sleep 0.02
    tries=$((tries + 1))
  done
}

gone() { ! kill -0 "$1" 2>/dev/null; }

# Whether the stream ring NAME has published a frame: its head (u64 at
# offset 88 of the segment) is above 0.
stream_started() {
  local head
  head=$(od -An -t u8 -j 88 -N 8 "/dev/shm/p1p2.$1" 2>/dev/null | tr -d ' ') || return 1
  [ -n "$head" ] && [ "$head" -gt 0 ]
}

has_line() { grep -q -- "$2" "$1" 2>/dev/null; }

# expect_ok WHO STATUS FILE: fails the lesson unless STATUS is 0, with the
# program's error line from FILE (its "WHO: error: ..." line if the file is
# shared with the other program, else its last line).
expect_ok() {
  [ "$2" = 0 ] && return 0
  local why
  why=$(grep "^${1%% *}: error:" "$3" 2>/dev/null | tail -n 1) ||
    why=$(grep -v '^[[:space:]]*$' "$3" 2>/dev/null | tail -n 1) || true
  fail "$1 exited with status $2${why:+: $why}"
}

now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%s' $((t / 1000))
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

socket_dir() {
  case ${XDG_RUNTIME_DIR:-} in
    /*) printf '%s' "$XDG_RUNTIME_DIR" ;;
    *) printf '%s' "${TMPDIR:-/tmp}" ;;
  esac
}

# This lesson's files in /dev/shm and the socket directory: the project's
# files (p1p2.NAME, p1p2.NAME.sock, p1p2-tmp.PID.N.NAME...) whose NAME
# matches one of the patterns in OWNED (the lesson's name, and the names the
# examples and the benchmark make from their pids). Other processes of the
# project may be running on this machine: their files are not the lesson's.
OWNED=()
lesson_files() {
  local file base pattern
  while IFS= read -r file; do
    [ -n "$file" ] || continue
    base=${file##*/}
    case $base in
      p1p2-tmp.*) base=${base#p1p2-tmp.*.*.} ;;
      *) base=${base#p1p2.} ;;
    esac
    base=${base%.sock}
    for pattern in "${OWNED[@]}"; do
      # shellcheck disable=SC2053 # the pattern is a glob on purpose
      if [[ $base == $pattern ]]; then
        printf '%s\n' "$file"
        break
      fi
    done
  done < <(find /dev/shm "$(socket_dir)" -maxdepth 1 \( -name 'p1p2.*' -o -name 'p1p2-tmp.*' \) \
    2>/dev/null | sort)
}

# What the lesson's processes left: files of its names, new since it began.
left_behind() {
  comm -13 <(printf '%s\n' "$BEFORE") <(lesson_files) | sed '/^$/d'
}

# The lesson's exit, passed or failed: its processes still running are
# stopped (by pid: SIGTERM, then SIGKILL after 2 s) and reaped, then the
# files they left are removed.
cleanup_lesson() {
  local pid file tries
  # SIGTERM first: the programs then remove their own files and exit.
  for pid in "${RUNNING[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${RUNNING[@]}"; do
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 100 ]; do
      sleep 0.02
      tries=$((tries + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    { wait "$pid" || true; } 2>/dev/null
  done
  RUNNING=()
  while IFS= read -r file; do
    rm -f -- "$file"
    printf '%sremoved %s, left by lesson %s%s\n' "$WARN" "$file" "$LESSON" "$OFF" >&2
  done < <(left_behind)
}

# Checks that nothing of this lesson is left; a claim of every lesson.
nothing_left() {
  local new
  new=$(left_behind)
  [ -z "$new" ] || fail "left behind in /dev/shm or $(socket_dir): $new"
}

# conclude: runs the Python on stdin over this lesson's files. What it prints
# are the "what you just saw" lines; claim(False, reason) fails the lesson.
PRELUDE='
import json, os, re, sys
DIR = sys.argv[1]
failed = []
def path(name): return os.path.join(DIR, name)
def text(name):
    with open(path(name)) as f: return f.read()
def load(name):
    lines = [l for l in text(name).splitlines() if l.strip()]
    if not lines: claim(False, f"{name} is empty"); finish()
    return json.loads(lines[-1])
def facts():
    return dict(l.split("=", 1) for l in text("facts").splitlines() if "=" in l)
def saw(line): print(line)
def claim(ok, reason):
    if not ok: failed.append(reason)
    return bool(ok)
def finish():
    for reason in failed: print(reason, file=sys.stderr)
    sys.stdout.flush()
    os._exit(3 if failed else 0)
def mb(n): return f"{n / 1e6:.2f} MB"
def n(x): return f"{x:,}"
def t(ns):
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1, "ns")):
        if ns >= scale or unit == "ns":
            x = ns / scale
            return f"{x:.2f} {unit}" if x < 10 else f"{x:.1f} {unit}" if x < 100 else f"{x:.0f} {unit}"
'

conclude() {
  local code rc=0
  code=$(cat)
  python3 -c "$PRELUDE$code"$'\nfinish()' "$LESSON_DIR" >"$LESSON_DIR/saw" 2>"$LESSON_DIR/saw.err" || rc=$?
  printf '\n%sWhat you just saw%s\n' "$BOLD" "$OFF"
  local line
  while IFS= read -r line; do printf '  %s* %s%s\n' "$SAW" "$line" "$OFF"; done <"$LESSON_DIR/saw"
  if [ "$rc" != 0 ]; then
    [ -s "$LESSON_DIR/saw.err" ] || fail "the summary could not be computed (python3 exited $rc)"
    fail "$(paste -sd';' "$LESSON_DIR/saw.err" | sed 's/;/; /g')"
  fi
}

# ---------------------------------------------------------------------------
# The lessons. Each runs in its own subshell with NAME (its segment name),
# LESSON_DIR (its files) and BEFORE (the project's files before it).

lesson_1() {
  explain \
    "Over a socket, P1 write()s the image into the kernel and P2 read()s it out:" \
    "two copies, and the kernel counts every byte in /proc/self/io (rchar, wchar)." \
    "Over shared memory (shm), P1 reads the file straight into a segment in /dev/shm" \
    "and P2 checks and decodes it in place. With --json each side reports its copy" \
    "ledger (copies) and the kernel's counters over the transfer (proc_io)."
  local tr args consumer
  for tr in shm unix tcp; do
    args=(--name "$NAME" --transport "$tr")
    # A free port rather than the default, which another program may hold.
    [ "$tr" = tcp ] && args+=(--addr "127.0.0.1:$(free_port)")
    args+=(--timeout "$LIMIT" --json)
    step "the image over $tr"
    show_cmd '&' consumer "${args[@]}"
    show_cmd '' producer "${args[@]}"
    launch "$LESSON_DIR/c-$tr.json" "$LESSON_DIR/c-$tr.err" consumer "${args[@]}"
    consumer=$LAUNCHED
    run_fg "$LESSON_DIR/p-$tr.json" "$LESSON_DIR/p-$tr.err" producer "${args[@]}"
    expect_ok "producer --transport $tr" "$STATUS" "$LESSON_DIR/p-$tr.err"
    reap "$consumer" $((LIMIT + 10))
    expect_ok "consumer --transport $tr" "$STATUS" "$LESSON_DIR/c-$tr.err"
    show_json "P1 producer" "$LESSON_DIR/p-$tr.json" transport bytes copies proc_io read_file.copies
    show_json "P2 consumer" "$LESSON_DIR/c-$tr.json" transport bytes copies proc_io
    pause
  done
  conclude <<'PY'
runs = {}
for tr in ("shm", "unix", "tcp"):
    p, c = load(f"p-{tr}.json"), load(f"c-{tr}.json")
    claim(p["crc32"] == c["crc32"] and p["bytes"] == c["bytes"],
          f"over {tr} P1 sent crc32 {p['crc32']} ({p['bytes']} bytes), P2 checked {c['crc32']} ({c['bytes']} bytes)")
    if "proc_io" not in p or "proc_io" not in c:
        claim(False, "this system has no /proc/self/io: the kernel's counters are missing")
        finish()
    runs[tr] = (p, c)
size = runs["shm"][0]["bytes"]
def all_copies(p, c):
    first = (p.get("read_file") or {}).get("copies", [])
    return len(first) + len(p["copies"]) + len(c["copies"])
for tr in ("unix", "tcp"):
    p, c = runs[tr]
    w, r = p["proc_io"]["wchar"], c["proc_io"]["rchar"]
    ledger = p["copies"] + c["copies"]
    claim(w >= size and r >= size,
          f"over {tr} the kernel counted {w} bytes written by P1 and {r} read by P2, less than the {size}-byte image")
    claim(len(p["copies"]) == 1 and len(c["copies"]) == 1 and all(x["by"] == "kernel" for x in ledger),
          f"over {tr} the ledgers list {len(p['copies'])} + {len(c['copies'])} copies between the processes, not 1 + 1 by the kernel")
    saw(f"over {tr}, the kernel counted {mb(w + r)} through read/write for a {mb(size)} image: "
        f"P1's write() put {mb(w)} into the kernel, P2's read() took {mb(r)} out: 2 copies")
p, c = runs["shm"]
pw, cr, cw = p["proc_io"]["wchar"], c["proc_io"]["rchar"], c["proc_io"]["wchar"]
claim(c["copies"] == [], f"over shm P2's ledger lists copies: {c['copies']}")
claim(cr + cw < size / 100 and pw < size / 100,
      f"over shm read/write moved {pw + cr + cw} bytes between the processes, 1 % of the image or more")
claim(len(p["copies"]) == 1 and p["copies"][0]["what"].startswith("file ->"),
      f"over shm P1's ledger is not one copy from the file: {p['copies']}")
saw(f"over shm, {mb(pw + cr)} went through read/write between the processes and P2 made "
    f"{len(c['copies'])} copies: it checked and decoded the image in place; P1's one copy was "
    f"the file itself ({p['copies'][0]['what']}, {mb(p['copies'][0]['bytes'])})")
up, uc = runs["unix"]
shm_between = len(c["copies"]) + len([x for x in p["copies"] if not x["what"].startswith("file ->")])
saw(f"so: the socket moved {mb(up['proc_io']['wchar'] + uc['proc_io']['rchar'])} through read/write "
    f"for a {mb(size)} image: 2 copies; shared memory: {shm_between}. "
    f"With P1's read of the file: {all_copies(up, uc)} copies over unix, {all_copies(p, c)} over shm")
PY
}

lesson_2() {
  explain \
    "The segment's header holds a process-shared mutex. P1 takes it before it copies" \
    "the image in and releases it when the image is complete; P2 must take it before" \
    "it reads. --hold MS makes P1 keep it MS ms longer, so you can watch P2 wait." \
    "Either may start first: here P2 first, then P1 first."
  local log=$LESSON_DIR/p2-first.log consumer producer

  step "P2 starts first; P1 holds the lock 1000 ms"
  show_cmd '&' consumer --name "$NAME" --timeout "$LIMIT"
  show_cmd '' producer --name "$NAME" --hold 1000 --timeout "$LIMIT"
  launch "$log" "$log" consumer --name "$NAME" --timeout "$LIMIT"
  consumer=$LAUNCHED
  until_true 10 "the consumer to start" has_line "$log" "^P2 consumer | pid"
  run_fg "$log" "$log" producer --name "$NAME" --hold 1000 --timeout "$LIMIT"
  expect_ok producer "$STATUS" "$log"
  reap "$consumer" $((LIMIT + 10))
  expect_ok consumer "$STATUS" "$log"
  show_output "$log"
  pause

  step "P1 starts first and holds the lock 1500 ms; P2 starts while it holds it"
  show_cmd '&' producer --name "$NAME" --hold 1500 --timeout "$LIMIT" --json
  show_cmd "   # once /dev/shm/p1p2.$NAME exists" consumer --name "$NAME" --timeout "$LIMIT" --json
  launch "$LESSON_DIR/p1-first-p.json" "$LESSON_DIR/p1-first-p.err" \
    producer --name "$NAME" --hold 1500 --timeout "$LIMIT" --json
  producer=$LAUNCHED
  # The segment gets its name only once its lock is taken.
  until_true 10 "/dev/shm/p1p2.$NAME" test -e "/dev/shm/p1p2.$NAME"
  run_fg "$LESSON_DIR/p1-first-c.json" "$LESSON_DIR/p1-first-c.err" \
    consumer --name "$NAME" --timeout "$LIMIT" --json
  expect_ok consumer "$STATUS" "$LESSON_DIR/p1-first-c.err"
  reap "$producer" $((LIMIT + 10))
  expect_ok producer "$STATUS" "$LESSON_DIR/p1-first-p.err"
  show_json "P1 producer" "$LESSON_DIR/p1-first-p.json" pid copy_start_unix_ns copy_ms hold_ms
  show_json "P2 consumer" "$LESSON_DIR/p1-first-c.json" producer_pid wait_ms transfer_ms verified_unix_ns
  pause

  conclude <<'PY'
log = text("p2-first.log")
def find(pattern, who):
    m = re.search(pattern, log, re.M)
    claim(m, f"{who} never printed a line matching {pattern!r}")
    if not m: finish()
    return m
p1 = int(find(r"^P1 producer \| pid (\d+): sending", "P1").group(1))
held_by = int(find(r"^P2 consumer \| waiting for the lock, held by producer pid (\d+)", "P2").group(1))
hold = float(find(r"^P1 producer \| holding exclusive access for (\d+) ms", "P1").group(1))
got = float(find(r"^P2 consumer \| got the lock after ([\d.]+) ms", "P2").group(1))
claim(log.find("P2 consumer | pid") < log.find("P1 producer | pid"), "P2 did not start first")
claim(held_by == p1, f"P2 waited for pid {held_by}, not for P1 (pid {p1})")
claim(got >= hold, f"P2 got the lock after {got} ms, before P1's {hold:.0f} ms hold could end")
saw(f"P2 first: P1 (pid {p1}) made the segment with its lock already taken, copied the image in "
    f"and held the lock {hold:.0f} ms more; P2 said it was waiting for the lock held by pid {held_by} "
    f"and got it after {got:.0f} ms, P1's hold included")
p, c = load("p1-first-p.json"), load("p1-first-c.json")
start = p["copy_start_unix_ns"]
release = start + (p["copy_ms"] + p["hold_ms"]) * 1e6   # the earliest P1 can have released
verified = c["verified_unix_ns"]
c_start = verified - (c["wait_ms"] + c["transfer_ms"]) * 1e6
def at(ns): return f"+{(ns - start) / 1e6:.1f} ms"
claim(c["producer_pid"] == p["pid"], f"P2 read from pid {c['producer_pid']}, not P1 (pid {p['pid']})")
claim(c_start < release, f"P2 started at {at(c_start)}, after P1's release at {at(release)}: it had nothing to wait for")
claim(verified >= release, f"P2 verified the image at {at(verified)}, before P1 could release the lock at {at(release)}")
saw(f"P1 first: P1 (pid {p['pid']}) began its copy at +0 ms and held the lock until {at(release)} at the "
    f"earliest ({p['copy_ms']} ms of copy, then {p['hold_ms']:.0f} ms of --hold); P2 started at {at(c_start)}, "
    f"waited {c['wait_ms']:.0f} ms and verified the image at {at(verified)}, "
    f"{(verified - release) / 1e6:.1f} ms after that earliest release")
saw("in both orders P2 read nothing while P1 held the lock: exclusive access, whoever starts first")
PY
}

lesson_3() {
  explain \
    "Python's multiprocessing shows shared memory with Value: a child process runs" \
    "'with num.get_lock(): num.value += 10' and the parent sees the change. common::shared" \
    "is the same in Rust, on this project's segments. But += is a load then a store:" \
    "two processes that load the same number both store it plus one, and one update is" \
    "lost, unless the lock makes the load and the store one step. The race example counts."
  step "Python's Value example, in Rust (a real child process)"
  show_cmd '' value
  launch "$LESSON_DIR/value.out" "$LESSON_DIR/value.err" value
  OWNED+=("example-*-$LAUNCHED" "example-*-$LAUNCHED-*")
  reap "$LAUNCHED" $((LIMIT + 10))
  expect_ok "the value example" "$STATUS" "$LESSON_DIR/value.err"
  show_output "$LESSON_DIR/value.out"
  pause

  step "4 processes add 1 to one shared counter a million times each, with the lock, then without"
  show_cmd '' race --procs 4 --iters 1000000 --timeout "$LIMIT"
  launch "$LESSON_DIR/race.out" "$LESSON_DIR/race.err" race --procs 4 --iters 1000000 --timeout "$LIMIT"
  OWNED+=("example-*-$LAUNCHED" "example-*-$LAUNCHED-*")
  reap "$LAUNCHED" $((LIMIT + 10))
  expect_ok "the race example" "$STATUS" "$LESSON_DIR/race.err"
  show_output "$LESSON_DIR/race.out"
  pause

  conclude <<'PY'
value = text("value.out").strip()
claim(value == "Value is  10", f"the value example printed {value!r}, not 'Value is  10'")
saw(f"the child added 10 under the lock and the parent, a different process, read it back: {value!r}")
line = text("race.out").strip()
m = re.fullmatch(r"expected (\d+) \| with lock (\d+) \((\d+) lost\) \| without lock (\d+) \((\d+) lost\)", line)
claim(m, f"cannot read the race example's line: {line!r}")
if not m: finish()
expected, locked, _, unlocked, _ = map(int, m.groups())
claim(locked == expected, f"with the lock the counter reached {n(locked)}, not {n(expected)}: updates were lost")
claim(unlocked <= expected, f"without the lock the counter reached {n(unlocked)}, more than the {n(expected)} increments made")
saw(f"with the lock: {n(locked)} of {n(expected)} increments counted, none lost")
lost = expected - unlocked
if lost:
    saw(f"without it: {n(unlocked)}, so {n(lost)} updates ({100 * lost / expected:.1f} %) were lost: "
        f"processes loaded the same number and stored the same number plus one")
else:
    saw("without it, this run happened to lose none: the processes hardly ran at the same time "
        "(a busy or one-CPU machine); only the lock makes 0 lost certain")
PY
}

lesson_4() {
  explain \
    "What if P1 dies while it holds the lock? An ordinary mutex stays locked for good," \
    "and P2 would wait until its --timeout. The segment's mutex is robust: when its" \
    "holder dies, however it dies, the kernel hands it to the next waiter at once, marked" \
    "'owner died'. P2 then reads the state the dead P1 left: here a complete image, which" \
    "it uses, and it removes the segment that P1 can no longer remove."
  local log=$LESSON_DIR/killed.log consumer producer t_hold t_kill t_exit hold_ms=20000

  step "P2 waits for the lock; P1 holds it for $((hold_ms / 1000)) s"
  show_cmd '&' consumer --name "$NAME" --timeout "$LIMIT"
  show_cmd '&' producer --name "$NAME" --hold "$hold_ms" --timeout "$LIMIT"
  launch "$log" "$log" consumer --name "$NAME" --timeout "$LIMIT"
  consumer=$LAUNCHED
  until_true 10 "the consumer to start" has_line "$log" "^P2 consumer | pid"
  launch "$log" "$log" producer --name "$NAME" --hold "$hold_ms" --timeout "$LIMIT"
  producer=$LAUNCHED
  until_true 10 "the producer to hold the lock" has_line "$log" "^P1 producer | holding exclusive access"
  t_hold=$(now_ms)
  until_true 10 "the consumer to wait for the lock" has_line "$log" "^P2 consumer | waiting for the lock"

  step "P1 is killed while it holds the lock"
  show_cmd "   # P1, holding the lock" kill -9 "$producer"
  # Out of the shell's job table, so that it does not announce the kill;
  # it is reaped all the same.
  disown "$producer"
  t_kill=$(now_ms)
  kill -9 "$producer"
  reap "$consumer" $((LIMIT + 10))
  t_exit=$(now_ms)
  local consumer_status=$STATUS
  until_true 5 "the killed producer to be gone" gone "$producer"
  forget "$producer"
  local shm_left=0
  [ -e "/dev/shm/p1p2.$NAME" ] && shm_left=1
  show_output "$log"
  expect_ok consumer "$consumer_status" "$log"
  pause

  step "the next transfer under the same name"
  local next=$LESSON_DIR/next.log
  show_cmd '&' consumer --name "$NAME" --timeout "$LIMIT"
  show_cmd '' producer --name "$NAME" --timeout "$LIMIT"
  launch "$next" "$next" consumer --name "$NAME" --timeout "$LIMIT"
  consumer=$LAUNCHED
  run_fg "$next" "$next" producer --name "$NAME" --timeout "$LIMIT"
  local producer_status=$STATUS
  reap "$consumer" $((LIMIT + 10))
  show_output "$next"
  expect_ok producer "$producer_status" "$next"
  expect_ok consumer "$STATUS" "$next"
  pause

  printf '%s\n' "killed=$producer" "hold_ms=$hold_ms" "held_for_ms=$((t_kill - t_hold))" \
    "kill_to_exit_ms=$((t_exit - t_kill))" "shm_left=$shm_left" "timeout_s=$LIMIT" >"$LESSON_DIR/facts"
  conclude <<'PY'
f = facts()
killed, log, nxt = int(f["killed"]), text("killed.log"), text("next.log")
m = re.search(r"^P2 consumer \| waiting for the lock, held by producer pid (\d+)", log, re.M)
claim(m and int(m.group(1)) == killed, f"P2 was not waiting for the lock held by P1 (pid {killed})")
died = re.search(rf"^P2 consumer \| (.*pid {killed} died holding the lock.*)$", log, re.M)
claim(died, f"P2 never said that pid {killed} died holding the lock")
left = int(f["hold_ms"]) - int(f["held_for_ms"])
took = int(f["kill_to_exit_ms"])
claim(took < 2000, f"P2 ended {took} ms after the kill: not at once")
claim(re.search(r"^P2 consumer \| crc32 \w+ ok", log, re.M), "P2 did not verify the image the dead P1 left")
claim(f["shm_left"] == "0", "the dead P1's segment was still in /dev/shm after P2 ended")
saw(f"P2 was waiting for the lock held by P1 (pid {killed}), whose {int(f['hold_ms']) // 1000} s hold "
    f"had about {left / 1000:.1f} s to go when kill -9 ended it")
if died:
    saw(f"P2 learned it {took} ms after the kill, from the robust mutex, not after its {f['timeout_s']} s "
        f"--timeout, and named the pid: \"{died.group(1)}\"")
saw("P2 checked the CRC-32 of the complete image P1 had left, decoded it, and removed "
    "the dead P1's segment: nothing was left in /dev/shm")
ok = re.search(r"^P2 consumer \| crc32 (\w+) ok", nxt, re.M)
claim(ok and re.search(r"^P1 producer \| consumer pid \d+ acknowledged", nxt, re.M),
      "the next transfer under the same name did not complete")
if ok:
    saw(f"the next transfer under the same name worked at once: crc32 {ok.group(1)}, acknowledged")
PY
}

lesson_5() {
  explain \
    "A named segment can be opened, shrunk or rewritten by any process of the same user" \
    "while P2 reads it. With --transport memfd, P1 puts the image in an anonymous memfd" \
    "(no name in /dev/shm), seals it against shrinking, growing and writing, and passes" \
    "the descriptor itself over a Unix socket. With --try-tamper, P2 tries to shrink," \
    "grow and write the memory it received, and to map it writable: the kernel says no."
  local log=$LESSON_DIR/memfd.log consumer producer
  step "a sealed memfd; P1 holds it 1000 ms before passing it, P2 then tries to change it"
  show_cmd '&' consumer --name "$NAME" --transport memfd --try-tamper --timeout "$LIMIT"
  show_cmd '&' producer --name "$NAME" --transport memfd --hold 1000 --timeout "$LIMIT"
  launch "$log" "$log" consumer --name "$NAME" --transport memfd --try-tamper --timeout "$LIMIT"
  consumer=$LAUNCHED
  until_true 10 "the consumer to start" has_line "$log" "^P2 consumer | pid"
  launch "$log" "$log" producer --name "$NAME" --transport memfd --hold 1000 --timeout "$LIMIT"
  producer=$LAUNCHED
  until_true 10 "the producer to hold the sealed memfd" has_line "$log" "^P1 producer | holding"
  # Where is the memory now? Only behind a descriptor of P1.
  show_cmd "   # while P1 holds the sealed memfd" ls -l "/proc/$producer/fd"
  ls -l "/proc/$producer/fd" >"$LESSON_DIR/fd.out" 2>&1 || true
  show_output "$LESSON_DIR/fd.out"
  show_cmd '' ls "/dev/shm/p1p2.$NAME"
  ls "/dev/shm/p1p2.$NAME" >"$LESSON_DIR/shm.out" 2>&1 || true
  show_output "$LESSON_DIR/shm.out"
  reap "$producer" $((LIMIT + 10))
  local producer_status=$STATUS
  reap "$consumer" $((LIMIT + 10))
  printf '%s\n' "producer=$producer" >"$LESSON_DIR/facts"
  show_output "$log"
  expect_ok producer "$producer_status" "$log"
  expect_ok consumer "$STATUS" "$log"
  pause
  conclude <<'PY'
log = text("memfd.log")
sealed = re.search(r"^P2 consumer \| received a memfd sealed with ([a-z, -]+) holding ([\d,]+) bytes", log, re.M)
claim(sealed, "P2 did not say which seals the memfd it received carries")
if not sealed: finish()
seals = [s.strip() for s in sealed.group(1).split(",")]
claim({"shrink", "grow", "write"} <= set(seals), f"the memfd carries only the seals {seals}")
fds, shm = text("fd.out"), text("shm.out")
memfd = re.search(r"(\d+) -> (/memfd:\S+ \(deleted\))", fds)
claim(memfd, f"P1 (pid {facts()['producer']}) had no memfd open while it held it")
claim("No such file" in shm, f"/dev/shm had the name all the same: {shm.strip()!r}")
if memfd:
    saw(f"while P1 held it, the memory was only a descriptor, /proc/{facts()['producer']}/fd/{memfd.group(1)} -> "
        f"{memfd.group(2)}: a label, in no directory; /dev/shm/p1p2.tour5 did not exist")
saw(f"P2 received it over the Unix socket (SCM_RIGHTS): {sealed.group(2)} bytes sealed with {', '.join(seals)}")
tries = re.findall(r"^P2 consumer \| tried to (.+?) \((.+)\): (refused with (\S+) \((.+)\)|allowed)$", log, re.M)
claim(len(tries) == 4, f"P2 reported {len(tries)} attempts to change the memfd, not 4")
for doing, call, outcome, errno, error in tries:
    if claim(outcome != "allowed", f"P2 could {doing} the sealed memfd ({call})"):
        saw(f"to {doing}, {call} was refused by the kernel: {errno} ({error})")
crc = re.search(r"^P2 consumer \| crc32 (\w+) ok", log, re.M)
claim(crc and re.search(r"^P2 consumer \| acknowledged; the producer confirmed: delivered", log, re.M),
      "the image was not verified and delivered")
if crc:
    saw(f"the image was untouched: crc32 {crc.group(1)} ok, decoded in place and delivered")
PY
}

lesson_6() {
  explain \
    "A camera, a robot or a video pipeline moves a stream of raw frames to several readers." \
    "producer --stream writes each frame once into a ring of slots in shared memory; every" \
    "consumer --stream reads it in place, checks its CRC and re-reads the slot's sequence" \
    "number, so a frame overwritten while it was read is skipped, never delivered. Under" \
    "--policy latest the writer never waits: a stopped reader only misses frames. Under" \
    "--policy every it waits for its readers, and drops one that holds it up for a second."
  local run policy readers r producer stopped fps=200 secs=2
  for run in live stopped every; do
    policy=latest
    [ "$run" = every ] && policy=every
    local args=(--stream --name "$NAME" --timeout "$LIMIT" --json)
    local pargs=("${args[@]}" --size 640x480 --fps "$fps" --seconds "$secs" --consumers 3 --policy "$policy")
    case $run in
      live) step "three readers, all reading (policy latest, $fps frames a second for $secs s)" ;;
      stopped) step "the same, and reader 3 is stopped (kill -STOP) once the stream runs" ;;
      every) step "the same with --policy every: the writer waits for its readers" ;;
    esac
    readers=()
    for r in 1 2 3; do
      show_cmd '&' consumer "${args[@]}"
      launch "$LESSON_DIR/$run-c$r.json" "$LESSON_DIR/$run-c$r.err" consumer "${args[@]}"
      readers+=("$LAUNCHED")
    done
    show_cmd '' producer "${pargs[@]}"
    launch "$LESSON_DIR/$run-p.json" "$LESSON_DIR/$run-p.err" producer "${pargs[@]}"
    producer=$LAUNCHED
    if [ "$run" != live ]; then
      stopped=${readers[2]}
      # Once frame 1 is out (the ring's head, at offset 88), all three
      # readers are attached: the producer waited for them.
      until_true 10 "the stream to start" stream_started "$NAME"
      show_cmd "   # reader 3" kill -STOP "$stopped"
      kill -STOP "$stopped"
    fi
    reap "$producer" $((LIMIT + 10))
    expect_ok producer "$STATUS" "$LESSON_DIR/$run-p.err"
    if [ "$run" != live ]; then
      show_cmd "   # reader 3, once the stream has ended" kill -CONT "$stopped"
      kill -CONT "$stopped"
    fi
    for r in 1 2 3; do
      reap "${readers[$((r - 1))]}" $((LIMIT + 10))
      expect_ok "consumer $r" "$STATUS" "$LESSON_DIR/$run-c$r.err"
    done
    show_json "P1 producer" "$LESSON_DIR/$run-p.json" policy frames fps width height format evicted
    for r in 1 2 3; do
      show_json "P2 consumer $r" "$LESSON_DIR/$run-c$r.json" frames skipped evicted fps latency_us copies
    done
    pause
  done
  if [ -t 1 ]; then
    step "watch it: the newest frame, drawn in this terminal for 3 s"
    show_cmd '&' producer --stream --name "$NAME" --fps 30 --seconds 3
    show_cmd '' consumer --stream --name "$NAME" --preview
    launch "$LESSON_DIR/watch-p.log" "$LESSON_DIR/watch-p.log" producer --stream --name "$NAME" \
      --fps 30 --seconds 3 --timeout "$LIMIT"
    producer=$LAUNCHED
    "$(path_of consumer)" --stream --name "$NAME" --preview --timeout "$LIMIT" </dev/null || true
    reap "$producer" $((LIMIT + 10))
    pause
  fi
  printf '%s\n' "fps=$fps" >"$LESSON_DIR/facts"
  conclude <<'PY'
f = facts()
asked = float(f["fps"])
runs = {run: (load(f"{run}-p.json"), [load(f"{run}-c{r}.json") for r in (1, 2, 3)])
        for run in ("live", "stopped", "every")}
p, cs = runs["live"]
size = f"{p['width']}x{p['height']} {p['format']}"
claim(all(c["frames"] > 0 and c["copies"] == 0 for c in cs), "a live reader got no frame, or copied one")
saw(f"three readers of {size} frames ({mb(p['frame_bytes'])} each): the writer made {n(p['frames'])} "
    f"frames at {p['fps']:.0f} a second; the readers got "
    + ", ".join(f"{c['frames']} ({c['skipped']} skipped)" for c in cs)
    + f", each read in place with 0 copies; publish-to-read latency p50 "
    + ", ".join(t(c["latency_us"]["p50"] * 1e3) for c in cs)
    + f", p99 up to {t(max(c['latency_us']['p99'] for c in cs) * 1e3)}")
ps, css = runs["stopped"]
live_fps, stopped_fps = p["fps"], ps["fps"]
claim(stopped_fps >= 0.9 * live_fps,
      f"with reader 3 stopped the writer made {stopped_fps:.0f} frames a second against {live_fps:.0f} without: it slowed down")
claim(ps["evicted"] == 0, "under latest the writer dropped a reader, so it must have waited for one")
claim(css[2]["skipped"] > 0, "the stopped reader missed no frame")
saw(f"with reader 3 stopped, the writer kept its pace: {stopped_fps:.0f} frames a second against "
    f"{live_fps:.0f} with all three reading (asked: {asked:.0f}); readers 1 and 2 got "
    f"{css[0]['frames']} and {css[1]['frames']} frames")
saw(f"woken after the end, reader 3 had missed {n(css[2]['skipped'])} frames and read "
    f"{css[2]['frames']}: under latest a reader skips to the newest frame, and nobody waits for it")
pe, ces = runs["every"]
claim(pe["evicted"] == 1, f"under every the writer dropped {pe['evicted']} readers, not the 1 that was stopped")
claim(all(c["skipped"] == 0 for c in ces[:2]), "under every a live reader missed a frame")
claim(ces[2]["evicted"] >= 1, "the stopped reader did not learn that it had been dropped")
saw(f"under every the writer waited for reader 3, then dropped it (evicted: {pe['evicted']}) and went on: "
    f"{n(pe['frames'])} frames at {pe['fps']:.0f} a second, every one to readers 1 and 2 "
    f"({ces[0]['frames']} and {ces[1]['frames']}, 0 skipped); reader 3, woken, counted "
    f"{n(ces[2]['skipped'])} frames missed")
io = p.get("witness", {}).get("proc_io")
if io is not None:
    saw(f"the writer's kernel counters saw {mb(io['wchar'])} go through write() for {n(p['frames'])} frames "
        f"to 3 readers: the frames never passed through the kernel. Over a socket, one connection per "
        f"reader, it would have written {mb(p['frames'] * p['frame_bytes'] * 3)}, and each reader read its share")
PY
}

lesson_7() {
  explain \
    "Shared memory saves copies; it does not make fresh memory cheap, nor a sleeping" \
    "process quick to wake. Two cases, measured here by the benchmark: a fresh segment" \
    "for every message (the kernel allocates and zeroes every page, both sides fault them" \
    "in) against a reused Unix socket; and a 64-byte round trip between two processes on" \
    "different CPUs that sleep while they wait, where the wake-up costs more than the copy."
  local cpus args out=$LESSON_DIR/bench
  cpus=$(nproc)
  args=(--quick --sizes "4KiB,1MiB" --transports "shm,unix" --no-python --timeout "$LIMIT")
  if [ "$cpus" -ge 2 ]; then
    args+=(--latency-pin split)
  else
    args+=(--no-latency)
  fi
  args+=(--out "$out")
  step "the narrowest benchmark run for both (quick: 0.3 s per case)"
  show_cmd '' p1p2-bench "${args[@]}"
  launch "$LESSON_DIR/bench.out" "$LESSON_DIR/bench.err" p1p2-bench "${args[@]}"
  OWNED+=("bench-$LAUNCHED-*")
  reap "$LAUNCHED" 60
  expect_ok p1p2-bench "$STATUS" "$LESSON_DIR/bench.err"
  # The tables; the report's targets and notes are in results.md.
  awk '/^## Targets/ { exit } { print }' "$LESSON_DIR/bench.out" >"$LESSON_DIR/tables.out"
  grep '^Machine:' "$LESSON_DIR/bench.out" >>"$LESSON_DIR/tables.out" || true
  show_output "$LESSON_DIR/tables.out"
  printf '  %s│ (the targets and notes of the report are left out here: %s/results.md)%s\n' \
    "$DIM" "$out" "$OFF"
  pause
  conclude <<'PY'
d = json.load(open(path("bench/results.json")))
# The figures the tables show: a throughput row's median, a round trip's median of round medians.
rows = {(r["transport"], r["mode"], r["wait"], r["bytes"]): r["median_ns"] for r in d["results"]}
def size(b): return f"{b // 1024} KiB" if b < 1 << 20 else f"{b >> 20} MiB"
for b in (4096, 1 << 20):
    cold, reused = rows.get(("shm", "cold", "spin", b)), rows.get(("shm", "steady", "spin", b))
    uspin, ublock = rows.get(("unix", "steady", "spin", b)), rows.get(("unix", "steady", "block", b))
    if not claim(None not in (cold, reused, uspin, ublock), f"the benchmark did not measure every row at {size(b)}"):
        continue
    claim(cold > uspin and cold > ublock,
          f"at {size(b)} a fresh segment per message ({t(cold)}) was not slower than the reused socket ({t(uspin)}, {t(ublock)} blocking)")
    saw(f"{size(b)}: a fresh segment per message took {t(cold)}, a reused Unix socket {t(uspin)} "
        f"({t(ublock)} with blocking waits): the socket was {cold / uspin:.1f}x faster; "
        f"the same segment reused took {t(reused)}")
saw("so a segment made, faulted in and removed for every message loses to a socket: make it once and reuse it")
lat = {(r["transport"], r["variant"]): r["round_median_ns"] for r in d.get("latency", []) if r["pin"] == "split"}
if d["machine"]["cpus"] < 2:
    saw("this machine has one CPU: there is no round trip across CPUs to measure")
elif claim(all(k in lat for k in [("shm", "blocking"), ("shm", "spin"), ("unix", "blocking"), ("unix", "spin")]),
           "the benchmark did not measure the four round trips across CPUs"):
    sb, ss, ub, us = lat[("shm", "blocking")], lat[("shm", "spin")], lat[("unix", "blocking")], lat[("unix", "spin")]
    claim(sb >= 3 * ss, f"shm's blocking round trip ({t(sb)}) was not clearly slower than its spinning one ({t(ss)})")
    claim(ub / sb < us / ss,
          f"with blocking waits shm's lead over unix ({ub / sb:.2f}x) was not smaller than with spinning waits ({us / ss:.2f}x)")
    saw(f"64-byte round trip across {d['machine']['cpus']} CPUs, both sides sleeping while they wait: "
        f"shm {t(sb)}, unix {t(ub)}: unix / shm = {ub / sb:.2f}x, against {us / ss:.1f}x "
        f"when both spin (shm {t(ss)}, unix {t(us)})")
    saw(f"sleeping made shm's round trip {sb / ss:.0f}x slower than spinning: the wake-up, "
        "not the copy, sets the cost, and a socket pays the same wake-up")
PY
}

# ---------------------------------------------------------------------------
# Driver.

run_lesson() { # in a subshell
  local number=$1 func=$2
  LESSON=$number
  NAME=tour$number
  LESSON_DIR=$WORK/$number
  rm -rf "$LESSON_DIR"
  mkdir -p "$LESSON_DIR"
  OWNED=("$NAME")
  BEFORE=$(lesson_files)
  trap cleanup_lesson EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with status $?"' ERR
  "$func"
  nothing_left
}

main() {
  local arg chosen=() line
  for arg in "$@"; do
    case $arg in
      --list) list; exit 0 ;;
      --pause) PAUSE=1 ;;
      -h | --help) usage; exit 0 ;;
      [1-9])
        if [ "$arg" -gt "${#LESSONS[@]}" ]; then
          printf 'tour.sh: there is no lesson %s\n' "$arg" >&2
          usage >&2
          exit 2
        fi
        chosen+=("$arg")
        ;;
      *) printf 'tour.sh: unknown argument %s\n' "$arg" >&2; usage >&2; exit 2 ;;
    esac
  done
  if [ ${#chosen[@]} -eq 0 ]; then
    for line in "${LESSONS[@]}"; do chosen+=("$(field 0 "$line")"); done
  fi

  # The conclusions are computed from the programs' JSON and text in Python.
  command -v python3 >/dev/null 2>&1 || {
    echo "tour.sh: python3 is needed (it reads the programs' output)" >&2
    exit 1
  }
  printf '%sp1p2: a guided tour%s\n' "$BOLD" "$OFF"
  echo "Building the release binaries and examples (cargo build --release --workspace --bins --examples)..."
  cargo build --release --workspace --bins --examples --quiet
  cat <<EOF
Below, 'producer', 'consumer' and 'p1p2-bench' are $BIN/producer, $BIN/consumer
and $BIN/p1p2-bench, and 'cargo run --release -p common --example X' runs
$BIN/examples/X, all built just now. Type them from the repository's root.
The files of lesson N are kept in $WORK/N/.
EOF

  local number func title started took rc passed=0 failures=() tour_start
  tour_start=$(now_ms)
  for number in "${chosen[@]}"; do
    line=${LESSONS[$((number - 1))]}
    title=$(field 1 "$line")
    func=$(field 3 "$line")
    printf '\n%s==> Lesson %s: %s%s\n' "$BOLD" "$number" "$title" "$OFF"
    started=$(now_ms)
    set +e
    (
      set -eEuo pipefail
      run_lesson "$number" "$func"
    )
    rc=$?
    set -e
    took=$(($(now_ms) - started))
    if [ "$rc" = 130 ]; then
      printf '\n%sTour interrupted in lesson %s.%s\n' "$BAD" "$number" "$EOFF" >&2
      exit 130
    fi
    if [ "$rc" = 0 ]; then
      passed=$((passed + 1))
      printf '\n%sLesson %s passed in %d.%d s; nothing of it is left in /dev/shm or %s.%s\n' \
        "$DIM" "$number" $((took / 1000)) $((took % 1000 / 100)) "$(socket_dir)" "$OFF"
    else
      local why="exited with status $rc"
      [ -s "$WORK/$number/failure" ] && why=$(cat "$WORK/$number/failure")
      failures+=("lesson $number ($title): $why")
      printf '\n%sLesson %s failed after %d.%d s.%s\n' "$BAD" "$number" $((took / 1000)) $((took % 1000 / 100)) "$EOFF" >&2
    fi
    if [ $((took)) -gt 30000 ]; then
      printf '%swarning: lesson %s took more than 30 s%s\n' "$WARN" "$number" "$OFF"
    fi
    pause
  done

  took=$(($(now_ms) - tour_start))
  echo
  printf '%sTour: %d lesson(s) passed' "$BOLD" "$passed"
  printf ', %d failed, in %d.%d s.%s\n' "${#failures[@]}" $((took / 1000)) $((took % 1000 / 100)) "$OFF"
  if [ ${#failures[@]} -gt 0 ]; then
    for line in "${failures[@]}"; do printf '%sfailed:%s %s\n' "$BAD" "$EOFF" "$line" >&2; done
    exit 1
  fi
}

main "$@"
