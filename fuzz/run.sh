#!/usr/bin/env bash
# Fuzzes one target for SECONDS of wall time with the settings this crate is fuzzed with
# (fuzz/README.md): stable Rust, no sanitizer, known defect classes skipped, nice 10, one job.
# After a crash it starts again (libFuzzer stops at the first) until the time is used or five
# crashes were found; the crashes are in fuzz/artifacts/TARGET/, the logs in fuzz/target/logs/.
#
#   fuzz/run.sh TARGET SECONDS [more libFuzzer flags]
set -uo pipefail
cd "$(dirname "$0")/.."
target=$1
seconds=$2
shift 2
case $target in
  decode_*) max_len=65536 ;;
  *) max_len=262144 ;;
esac
case $target in
  *otlp_json*) dict=otlp_json ;;
  *agents*) dict=agents ;;
  *) dict=otlp_attributes ;;
esac
logs=fuzz/target/logs
mkdir -p "$logs"
end=$(($(date +%s) + seconds))
total=0
crashes=0
segment=0
while now=$(date +%s) && [ "$now" -lt "$end" ] && [ "$crashes" -lt 5 ]; do
  segment=$((segment + 1))
  log=$logs/$target-$segment.log
  SPANLENS_FUZZ_KNOWN=skip nice -n 10 cargo fuzz run --sanitizer none "$target" -- \
    -max_total_time=$((end - now)) -rss_limit_mb=2048 -max_len=$max_len -timeout=20 \
    -dict=fuzz/dictionaries/$dict.dict -print_final_stats=1 "$@" >"$log" 2>&1
  rc=$?
  n=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  total=$((total + ${n:-0}))
  echo "$target segment $segment: exit $rc, ${n:-?} executions; $(grep -E '^#[0-9]+' "$log" | tail -1)"
  if [ "$rc" -ne 0 ]; then
    crashes=$((crashes + 1))
    grep -m4 -E 'panicked at|^[a-z].*overflow|ERROR: libFuzzer|Test unit written' "$log"
  fi
done
echo "$target: $total executions in $seconds s, $crashes crash(es)"
