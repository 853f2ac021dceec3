# lib.sh — shell helpers shared by the benchmark scripts (sourced by
# http_bench.sh, scale_bench.sh, soak.sh): a free loopback port, waiting
# until a server has stopped using CPU, and killing the processes a script
# started (PIDS) when it exits.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
bench_cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }

# wait_idle PID [MAX_S]: until the process uses at most 5 ticks (0.05 s) of
# CPU over one second (index replay, background IVF builds), for up to MAX_S
# seconds (default 900); 1 when it exits or stays busy.
wait_idle() {
    local pid=$1 max=${2:-900} t=0 a b
    a=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || { echo "$(basename "$0"): server $pid exited" >&2; return 1; }
    while [ "$t" -lt "$max" ]; do
        sleep 1; t=$((t + 1))
        b=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 1
        [ $((b - a)) -le 5 ] && return 0
        a=$b
    done
    echo "$(basename "$0"): server still busy after ${max}s" >&2
    return 1
}
