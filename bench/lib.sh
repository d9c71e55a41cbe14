# Shared helpers for rbuild's benchmarks (source this file). Benchmarks are run by hand on
# the project's machine after ../shared/bench/peers.sh has installed and started the peers.
# The machines are noisy: every figure is a median over several runs, and results are
# printed as ratios against the fastest peer.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$BENCH_DIR")
RBUILD=${RBUILD:-$PROJECT_DIR/target/release/rbuild}
PEERS_SH=${PEERS_SH:-$PROJECT_DIR/../shared/bench/peers.sh}
RESULTS=()

# ensure_rbuild: build the release binary once.
ensure_rbuild() {
    (cd "$PROJECT_DIR" && cargo build --release -q) || { echo "bench: cargo build failed" >&2; exit 1; }
}

# have TOOL: true when TOOL is usable (peers may be missing on a developer machine).
have() { command -v "$1" >/dev/null 2>&1; }

# median_of N CMD...: runs CMD N times (output discarded) and prints the median wall time in
# seconds (bash's clock: no `date` process in the measured time).
median_of() {
    local n=$1; shift
    local times=() i start end
    for ((i = 0; i < n; i++)); do
        start=$EPOCHREALTIME
        "$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; echo "nan"; return 1; }
        end=$EPOCHREALTIME
        times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# median_after N SETUP CMD...: like median_of, but runs SETUP (a command name, untimed)
# before each timed run of CMD.
median_after() {
    local n=$1 setup=$2; shift 2
    local times=() i start end
    for ((i = 0; i < n; i++)); do
        "$setup" >/dev/null 2>&1 || { echo "bench: setup failed: $setup" >&2; echo "nan"; return 1; }
        start=$EPOCHREALTIME
        "$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; echo "nan"; return 1; }
        end=$EPOCHREALTIME
        times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# record CASE TOOL SECONDS: remember one median for the summary table.
record() {
    RESULTS+=("$1|$2|$3")
    printf '  %-28s %-10s %8.3f s\n' "$1" "$2" "$3"
}

# summary: per case, each tool's median and its ratio to the fastest peer (non-rbuild) tool.
summary() {
    echo
    printf '%-28s %-10s %10s %14s\n' CASE TOOL MEDIAN_S "x_FASTEST_PEER"
    printf '%s\n' "${RESULTS[@]}" | awk -F'|' '
        { c[NR]=$1; t[NR]=$2; s[NR]=$3; if ($2 != "rbuild" && $3 != "nan" && (!($1 in best) || $3 < best[$1])) best[$1]=$3 }
        END { for (i = 1; i <= NR; i++) {
                r = (c[i] in best && best[c[i]] > 0 && s[i] != "nan") ? sprintf("%.3f", s[i]/best[c[i]]) : "-";
                printf "%-28s %-10s %10s %14s\n", c[i], t[i], s[i], r } }'
}

# bench_context DIR: the 10,000-file context (100 dirs of 100 small files) with the ~10
# instruction Dockerfile of bench/build.sh and bench/chroot.sh.
bench_context() {
    local ctx=$1 d f
    mkdir -p "$ctx"
    for d in $(seq 0 99); do
        mkdir -p "$ctx/d$d"
        for f in $(seq 0 99); do echo "file $d/$f" > "$ctx/d$d/f$f.txt"; done
    done
    # About ten instructions, several RUN and a COPY, as a typical small service's Dockerfile.
    cat > "$ctx/Dockerfile" <<'EOF'
FROM localhost/busybox:latest
ENV APP_HOME=/app
WORKDIR /app
RUN mkdir -p bin etc && echo v1 > etc/version
RUN echo 'app:x:1000:1000::/app:/bin/sh' >> /etc/passwd
COPY . /ctx/
RUN find /ctx -type f | wc -l > /count
RUN echo 'echo hello' > bin/hello && chmod +x bin/hello
LABEL org.example.bench=build
EXPOSE 8080
USER app
CMD ["sh", "/app/bin/hello"]
EOF
}

# median: the median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
