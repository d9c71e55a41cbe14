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

# start_registry DIR: a fresh, empty docker-registry (Debian's docker-registry package) on a
# free 127.0.0.1 port, its storage and log under DIR (made here), ready when this returns.
# Sets REGISTRY_ADDR (host:port) and adds its pid to REGISTRY_PIDS; stop_registries ends them
# (call it from the script's EXIT trap). Not inside $(...): the variables would be lost.
REGISTRY_PIDS=()
start_registry() {
    local dir=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$dir"
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$dir/data" "$port" >"$dir/config.yml"
    /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    REGISTRY_PIDS+=($!)
    REGISTRY_ADDR=127.0.0.1:$port
    for _ in $(seq 100); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "bench: docker-registry on $REGISTRY_ADDR did not start (log: $dir/log)" >&2
    return 1
}

# stop_registries: ends the registries start_registry started.
stop_registries() {
    local p
    for p in "${REGISTRY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${REGISTRY_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    REGISTRY_PIDS=()
}

# have TOOL: true when TOOL is usable (peers may be missing on a developer machine).
have() { command -v "$1" >/dev/null 2>&1; }

# median [X...]: the median of the numbers X, or of those on stdin (one a line) when none
# are given.
median() {
    if (($#)); then printf '%s\n' "$@"; else cat; fi | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

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
    median "${times[@]}"
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
    median "${times[@]}"
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
