#!/usr/bin/env bash
# sluis vs Postfix relay throughput, end to end, on loopback. See benches/README.md.
#
#   smtp-source -> sluis           -> smtp-sink
#   smtp-source -> private Postfix -> smtp-sink
#
# For each scenario (message size x client sessions) the clock starts when smtp-source starts
# and stops when the sink has received every message (smtp-sink -c counter). Both relays get
# the same client, the same sink and the same filesystem for their queue.
#
# Environment (all optional):
#   N_SMALL=2000        messages per 5 KiB scenario
#   N_LARGE=200         messages per 1 MiB scenario
#   SMALL_SIZE=5120     bytes of payload of a "5 KiB" message (smtp-source -l)
#   LARGE_SIZE=1048576  bytes of payload of a "1 MiB" message
#   SESSIONS_SMALL="1 8"  client session counts for 5 KiB; SESSIONS_LARGE="1" for 1 MiB
#   N_SEALED=200        messages per "1 MiB attachment, [secure files]" scenario (sluis seals
#                       the attachment and relays a small rewritten copy; Postfix relays it all)
#   SESSIONS_SEALED="1 4 8"  client session counts for that scenario; "" skips it
#   SEALED_ATT=1048576  attachment bytes of that mail (e.g. 75497472 with N_SEALED=1 and
#                       ONLY=sluis: the peak RSS for one ~97 MiB message)
#   BEFORE_REPLY=auto   sluis's [policy] examine_before_reply (auto | always | never), to compare
#                       protecting before the 250 with queueing first
#   REPEAT=1            run every scenario this many times (a row each; Postfix first every
#                       other time), to see the spread of the ratio on a noisy machine
#   WARMUP=50           unmeasured 5 KiB messages per relay before the first scenario
#   RUN_TIMEOUT=600     seconds a scenario may take before it is reported as a timeout
#   SLUIS_BIN=...       use this binary instead of building (release) one
#   CARGO_TARGET_DIR=/var/tmp/sluis-target   where the release build goes
#   BENCH_DIR=...       work dir (default: mktemp -d under /var/tmp); removed unless KEEP=1
#   ONLY=sluis|postfix  run one side only
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PFSCRIPT=$REPO/tests/support/postfix_instance.sh

N_SMALL=${N_SMALL:-2000}
N_LARGE=${N_LARGE:-200}
SMALL_SIZE=${SMALL_SIZE:-5120}
LARGE_SIZE=${LARGE_SIZE:-1048576}
SESSIONS_SMALL=${SESSIONS_SMALL:-"1 8"}
SESSIONS_LARGE=${SESSIONS_LARGE:-"1"}
N_SEALED=${N_SEALED:-200}
SESSIONS_SEALED=${SESSIONS_SEALED-"1 4 8"}
SEALED_ATT=${SEALED_ATT:-1048576}
WARMUP=${WARMUP:-50}
BEFORE_REPLY=${BEFORE_REPLY:-auto}
REPEAT=${REPEAT:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
ONLY=${ONLY:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/sluis-target}

SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
FROM=bench-sender@example.org
TO=bench-rcpt@example.net

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in "$SMTP_SOURCE" "$SMTP_SINK" /usr/sbin/postfix python3; do
    command -v "$t" >/dev/null || die "$t not found (Debian packages: postfix, python3)"
done
[[ $(id -u) == 0 ]] || die "run as root (the private Postfix instance needs it)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port timeout_s
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------- build
if [[ $ONLY == postfix ]]; then
    SLUIS_BIN=/bin/true
elif [[ -z ${SLUIS_BIN:-} ]]; then
    log "cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release --bin sluis) >&2 || die "release build failed"
    SLUIS_BIN=$CARGO_TARGET_DIR/release/sluis
fi
[[ -x $SLUIS_BIN ]] || die "no sluis binary at $SLUIS_BIN"

# ---------------------------------------------------------------- work dir
if [[ -z ${BENCH_DIR:-} ]]; then
    BENCH_DIR=$(mktemp -d /var/tmp/sluis-bench.XXXXXX)
fi
mkdir -p "$BENCH_DIR"
chmod 0755 "$BENCH_DIR"
# The two relays' folders are placed like top-level ones (/var/spool/postfix, /var/lib/sluis),
# in block groups of their own: side by side in one folder, on ext4 without a journal, each
# new file of one relay is allocated past the inodes the other just freed (they are not reused
# for a while), and the relay that creates files pays for the other's deletions.
chattr +T "$BENCH_DIR" 2>/dev/null || log "cannot mark $BENCH_DIR as a top folder (chattr +T); the relays' folders may share block groups"
PIDS=()
cleanup() {
    set +e
    [[ -d $BENCH_DIR/postfix ]] && "$PFSCRIPT" stop "$BENCH_DIR/postfix"
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [[ ${KEEP:-0} != 1 ]]; then
        rm -rf "$BENCH_DIR"
    else
        log "kept $BENCH_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work dir $BENCH_DIR (filesystem: $(df -P "$BENCH_DIR" | awk 'NR==2{print $1" on "$6}'))"

# A sink with a running counter: "sess=N quit=N mesg=N\r" per event on stdout.
start_sink() { # name -> sets SINK_PORT_<name>, SINK_OUT_<name>
    local name=$1 port out
    port=$(free_port)
    out=$BENCH_DIR/sink-$name.out
    "$SMTP_SINK" -u nobody -c "127.0.0.1:$port" 1000 >"$out" 2>"$BENCH_DIR/sink-$name.err" &
    PIDS+=($!)
    wait_port "$port" 10 || die "smtp-sink ($name) did not start"
    printf -v "SINK_PORT_$name" '%s' "$port"
    printf -v "SINK_OUT_$name" '%s' "$out"
}

sink_count() { # outfile -> messages received so far
    local last
    last=$(tail -c 200 "$1" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n 1 || true)
    echo "${last#mesg=}" | grep -E '^[0-9]+$' || echo 0
}

# ---------------------------------------------------------------- relays
SLUIS_PID=
SLUIS_PORT=
start_sluis() {
    local cfg=$BENCH_DIR/sluis.toml
    cat >"$cfg" <<EOF
[smtp]
listen = "127.0.0.1:0"
hostname = "sluis.bench"
relay_networks = ["127.0.0.0/8"]
max_message_size = "200 MiB"
max_connections_per_ip = 1000

[relay]
next_hop = "smtp://127.0.0.1:$SINK_PORT_sluis"
retry_schedule = ["1s", "5s"]

[storage]
data_dir = "$BENCH_DIR/sluis-data"

[organisation]
name = "bench"
internal_domains = ["example.org"]

[web]
listen = "127.0.0.1:0"
public_url = "https://veilig.example.org"

# The shipped default policy: every message is inspected and decided on, as in production.
[policy]
dir = "$REPO/policies"
examine_before_reply = "$BEFORE_REPLY"
EOF
    "$SLUIS_BIN" serve --config "$cfg" >"$BENCH_DIR/sluis.out" 2>"$BENCH_DIR/sluis.err" &
    SLUIS_PID=$!
    PIDS+=("$SLUIS_PID")
    local deadline=$((SECONDS + 60)) line
    while ((SECONDS < deadline)); do
        line=$(grep -m1 '^smtp listening on ' "$BENCH_DIR/sluis.out" || true)
        if [[ -n $line ]] && grep -qx 'ready' "$BENCH_DIR/sluis.out"; then
            SLUIS_PORT=${line##*:}
            log "sluis pid $SLUIS_PID listening on 127.0.0.1:$SLUIS_PORT -> sink :$SINK_PORT_sluis"
            return 0
        fi
        kill -0 "$SLUIS_PID" 2>/dev/null || { tail -n 30 "$BENCH_DIR/sluis.err" >&2; die "sluis exited"; }
        sleep 0.1
    done
    tail -n 30 "$BENCH_DIR/sluis.err" >&2
    die "sluis did not print 'smtp listening on' and 'ready' within 60 s"
}

POSTFIX_PORT=
start_postfix() {
    POSTFIX_PORT=$(free_port)
    "$PFSCRIPT" start "$BENCH_DIR/postfix" "$POSTFIX_PORT" "$SINK_PORT_postfix" >&2 ||
        die "private postfix did not start"
}

reset_hwm() { # pid: reset the peak-RSS counter (Linux >= 4.0); 1 if impossible
    echo 5 >"/proc/$1/clear_refs" 2>/dev/null
}
hwm_mib() { # pid -> VmHWM in MiB
    awk '/^VmHWM:/{printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

# One scenario against one relay. Prints "RATE ACCEPT_RATE" (msgs/s), or "timeout GOT/N" or
# "died GOT/N" (sluis exited).
run_one() { # relay port count size sessions [message file]
    local relay=$1 port=$2 n=$3 size=$4 sess=$5 file=${6:-} out base target t0 t1 tsrc now got
    local content=(-l "$size")
    [[ -n $file ]] && content=(-F "$file")
    local outvar=SINK_OUT_$relay
    out=${!outvar}
    base=$(sink_count "$out")
    target=$((base + n))
    t0=$EPOCHREALTIME
    "$SMTP_SOURCE" -m "$n" -s "$sess" "${content[@]}" -f "$FROM" -t "$TO" \
        "127.0.0.1:$port" >"$BENCH_DIR/source.out" 2>&1 ||
        { cat "$BENCH_DIR/source.out" >&2; log "smtp-source against $relay failed"; }
    tsrc=$EPOCHREALTIME
    local deadline=$((SECONDS + RUN_TIMEOUT))
    while :; do
        got=$(sink_count "$out")
        ((got >= target)) && break
        if [[ $relay == sluis ]] && ! kill -0 "$SLUIS_PID" 2>/dev/null; then
            log "sluis (pid $SLUIS_PID) is gone; last lines of its log:"
            tail -n 5 "$BENCH_DIR/sluis.err" >&2
            echo "died $((got - base))/$n"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "timeout $((got - base))/$n"
            return 0
        fi
        sleep 0.02
    done
    t1=$EPOCHREALTIME
    python3 -c "n=$n; print('%.1f %.1f' % (n/($t1-$t0), n/($tsrc-$t0)))"
}

# ---------------------------------------------------------------- run
start_sink sluis
start_sink postfix
[[ $ONLY == postfix ]] || start_sluis
[[ $ONLY == sluis ]] || start_postfix

if ((WARMUP > 0)); then
    log "warm-up: $WARMUP messages per relay"
    [[ $ONLY == postfix ]] || run_one sluis "$SLUIS_PORT" "$WARMUP" "$SMALL_SIZE" 1 >/dev/null
    [[ $ONLY == sluis ]] || run_one postfix "$POSTFIX_PORT" "$WARMUP" "$SMALL_SIZE" 1 >/dev/null
fi

# A mail with a 1 MiB attachment, tagged [secure files]: sluis seals the attachment into its
# store and relays a rewritten copy with a link; Postfix relays the same mail unmodified.
SEALED_FILE=$BENCH_DIR/sealed.eml
python3 - "$SEALED_FILE" "$FROM" "$TO" "$SEALED_ATT" <<'PY'
import base64, os, sys
path, frm, to, size = sys.argv[1:5]
att = base64.encodebytes(os.urandom(int(size))).decode()  # 76-character lines
with open(path, "w", newline="\n") as f:
    f.write(f"From: Bench <{frm}>\nTo: <{to}>\nSubject: [secure files] kwartaalcijfers\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
            "--b\nContent-Type: text/plain; charset=utf-8\n\nDe cijfers staan in de bijlage.\n"
            "--b\nContent-Type: application/octet-stream\n"
            "Content-Disposition: attachment; filename=\"cijfers.bin\"\n"
            "Content-Transfer-Encoding: base64\n\n" + att + "--b--\n")
PY

SCENARIOS=()
for s in $SESSIONS_SMALL; do SCENARIOS+=("$N_SMALL $SMALL_SIZE $s"); done
for s in $SESSIONS_LARGE; do SCENARIOS+=("$N_LARGE $LARGE_SIZE $s"); done
for s in $SESSIONS_SEALED; do SCENARIOS+=("$N_SEALED sealed $s"); done

human() { # bytes -> 5 KiB / 1 MiB
    python3 -c "b=$1; print('%g MiB'%(b/1048576) if b>=1048576 else '%g KiB'%(b/1024))"
}

ROWS=()
PEAK=0
track_peak() { # MiB value -> keep the maximum in PEAK
    [[ $1 =~ ^[0-9.]+$ ]] && PEAK=$(python3 -c "print(max($PEAK, $1))")
    return 0
}
[[ -n $SLUIS_PID ]] && track_peak "$(hwm_mib "$SLUIS_PID")"
for sc in "${SCENARIOS[@]}"; do
    read -r n size sess <<<"$sc"
    file=
    if [[ $size == sealed ]]; then
        file=$SEALED_FILE
        size=0
        label="$(human "$SEALED_ATT") att sealed x$n, $sess sess"
    else
        label="$(human "$size") x$n, $sess sess"
    fi
    base_label=$label
    for ((rep = 1; rep <= REPEAT; rep++)); do
        ((REPEAT > 1)) && label="$base_label #$rep"
        s_res="-" p_res="-" rss="-"
        # Every other repetition Postfix goes first, so neither side always follows the other.
        order=(sluis postfix)
        ((rep % 2 == 0)) && order=(postfix sluis)
        for side in "${order[@]}"; do
            if [[ $side == sluis && $ONLY != postfix ]]; then
                reset_hwm "$SLUIS_PID" || true
                log "$label: sluis"
                s_res=$(run_one sluis "$SLUIS_PORT" "$n" "$size" "$sess" "$file")
                rss=$(hwm_mib "$SLUIS_PID")
                track_peak "$rss"
                log "  sluis: $s_res (e2e msgs/s, accept msgs/s); peak RSS ${rss} MiB"
            elif [[ $side == postfix && $ONLY != sluis ]]; then
                log "$label: postfix"
                p_res=$(run_one postfix "$POSTFIX_PORT" "$n" "$size" "$sess" "$file")
                log "  postfix: $p_res"
            fi
        done
        ROWS+=("$label|$s_res|$p_res|$rss")
    done
done

# ---------------------------------------------------------------- table
echo
echo "sluis vs Postfix $(postconf -d -h mail_version 2>/dev/null), loopback, $(nproc) CPU(s), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "msgs/s end to end (smtp-source start -> last message at smtp-sink); (accept) = rate at which"
echo "smtp-source got its 250s. Peak RSS = sluis VmHWM during that scenario."
printf '\n%-34s | %-23s | %-23s | %-13s | %s\n' "scenario" "sluis msgs/s (accept)" "Postfix msgs/s (accept)" "sluis/Postfix" "sluis peak RSS"
printf '%s\n' "-----------------------------------+-------------------------+-------------------------+---------------+---------------"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label s p rss <<<"$row"
    fmt() { # "E A" | timeout ... | -
        if [[ $1 == timeout* || $1 == died* || $1 == - ]]; then echo "$1"; else
            read -r e a <<<"$1"
            echo "$e ($a)"
        fi
    }
    ratio=-
    if [[ $s =~ ^[0-9.]+\  && $p =~ ^[0-9.]+\  ]]; then
        ratio=$(python3 -c "print('%.2f' % (${s%% *}/${p%% *}))")
    fi
    printf '%-34s | %-23s | %-23s | %-13s | %s\n' "$label" "$(fmt "$s")" "$(fmt "$p")" "$ratio" "$([[ $rss == - ]] && echo - || echo "$rss MiB")"
done
echo
[[ -n $SLUIS_PID ]] && echo "sluis peak RSS over the whole run (max VmHWM): ${PEAK} MiB"
exit 0
