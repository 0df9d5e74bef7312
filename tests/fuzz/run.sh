#!/bin/sh
# `make fuzz`, `make fuzz-smoke` and `make fuzz-coverage` (tests/fuzz/fuzz.am,
# docs/decisions/0019-fuzzing.md). Run from the build directory:
#
#   run.sh fuzz       build with clang and libFuzzer, replay each target's
#                     corpus, then fuzz it for FUZZ_TIME seconds (60)
#   run.sh smoke      the same with FUZZ_TIME 2: about a minute in all
#   run.sh coverage   replay the corpora in a coverage build and report
#                     line coverage per target (llvm-cov)
#
# Environment (make sets it): FUZZ_SRCDIR (absolute source directory),
# FUZZ_CC (clang, empty when configure found none), FUZZ_NAMES (every
# target), FUZZ_TARGETS (those to run; default all), FUZZ_TIME, FUZZ_REQUIRED
# (yes: a missing clang is an error, not a skip), MAKE.
#
# Work directory fuzz-work/: build/ and cov/ (the clang builds), corpus/NAME
# (inputs libFuzzer found; the seeds stay in the source tree), crashes/
# (crashing inputs: add one to tests/fuzz/corpus/NAME to keep it), logs/.
set -u
mode=${1:?usage: run.sh fuzz|smoke|coverage}
mode=${mode#fuzz-}
src=${FUZZ_SRCDIR:?}
cc=${FUZZ_CC:-}
make=${MAKE:-make}
names=${FUZZ_TARGETS:-${FUZZ_NAMES:?}}
work=fuzz-work

if [ -z "$cc" ] || [ "$cc" = no ]; then
  why="no clang with libFuzzer: install the Debian packages clang and libclang-rt-14-dev, then run configure again"
  if [ "${FUZZ_REQUIRED:-no}" = yes ]; then
    echo "fuzz: $why" >&2
    exit 1
  fi
  echo "fuzz: skipped: $why"
  exit 0
fi

# What each target reads, for the dictionaries and the coverage report:
# NAME|dictionaries (tests/fuzz/dict)|source files of the decoder
table() {
  cat <<'EOF'
chunk|text|lib/chunk.c
config|config|lib/config.c
embeddings|json openai|lib/embeddings.c
http_error|json openai html|lib/http_error.c
llm|json openai sse|lib/llm.c
message|protobuf|lib/message_wire.c lib/message.c
message_json|json message|lib/message_json.c
milvus|json milvus|lib/vstore_milvus.c
pipeline|json pipeline|lib/pipeline_wire.c
rag_context|text|lib/rag_context.c
reranker|json openai|lib/reranker.c
sse|sse|lib/sse.c
stt|json openai|lib/stt.c
subject|subject|lib/subject.c
trace|trace|lib/trace.c
tts|json openai|lib/tts.c
vstore_local|vstore|lib/vstore_local.c
EOF
}
field() { table | awk -F'|' -v n="$1" -v f="$2" '$1 == n { print $f }'; }

for n in $names; do
  if [ -z "$(field "$n" 1)" ]; then
    echo "fuzz: unknown target $n (targets: $FUZZ_NAMES)" >&2
    exit 1
  fi
done

# build DIR CFLAGS LDFLAGS MAKE-ARGS...: configure (once) and make the
# targets there.
build() {
  dir=$1 cflags=$2 ldflags=$3
  shift 3
  if [ ! -f "$dir/Makefile" ] || [ "$src/configure" -nt "$dir/Makefile" ]; then
    echo "fuzz: configuring $dir with $cc"
    mkdir -p "$dir"
    (cd "$dir" && "$src/configure" --quiet --disable-model-backend \
      CC="$cc" CFLAGS="$cflags" LDFLAGS="$ldflags") >"$work/logs/configure-$(basename "$dir").log" 2>&1 || {
      echo "fuzz: configure failed; see $work/logs/configure-$(basename "$dir").log" >&2
      exit 1
    }
  fi
  progs=
  for n in $names; do progs="$progs tests/fuzz/fuzz_$n"; done
  echo "fuzz: building$progs in $dir"
  $make -C "$dir" fuzz-built-sources >/dev/null &&
    $make -C "$dir" "$@" $progs >"$work/logs/build-$(basename "$dir").log" 2>&1 || {
    tail -n 30 "$work/logs/build-$(basename "$dir").log" >&2
    echo "fuzz: the build failed; see $work/logs/build-$(basename "$dir").log" >&2
    exit 1
  }
}

mkdir -p "$work/logs" "$work/crashes" "$work/dict"
# Scratch files (store files, secrets) in memory when possible: fsync on
# a disk would set the pace of the store target.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  TMPDIR=/dev/shm
  export TMPDIR
fi

if [ "$mode" = coverage ]; then
  bin=$(dirname "$(readlink -f "$cc")")
  prof=$bin/llvm-profdata cov=$bin/llvm-cov
  [ -x "$prof" ] && [ -x "$cov" ] || {
    echo "fuzz: no llvm-profdata and llvm-cov next to $cc (Debian package llvm)" >&2
    exit 1
  }
  build "$work/cov" "-g -O0 -fprofile-instr-generate -fcoverage-mapping" \
    "-fprofile-instr-generate"
  mkdir -p "$work/cov/profiles"
  printf '%-14s %-26s %-22s %s\n' target "lines of the file(s)" \
    "lines of reached funcs" inputs
  for n in $names; do
    prog=$work/cov/tests/fuzz/fuzz_$n
    raw=$work/cov/profiles/$n.profraw data=$work/cov/profiles/$n.profdata
    rm -f "$raw"
    mkdir -p "$work/corpus/$n"
    inputs=$(LLVM_PROFILE_FILE=$raw "$prog" "$src/tests/fuzz/corpus/$n" \
      "$work/corpus/$n" 2>"$work/logs/coverage-$n.log" | sed -n 's/.*: \([0-9]*\) inputs.*/\1/p')
    "$prof" merge -sparse "$raw" -o "$data" || exit 1
    files=
    for f in $(field "$n" 3); do files="$files $src/$f"; done
    # the TOTAL line: ... Lines Missed Cover ...; columns 8-10
    all=$("$cov" report "$prog" -instr-profile="$data" $files | awk '$1 == "TOTAL" { print $10 " of " $8 }')
    # per function: name regions missed cover lines missed cover ...; the
    # functions the target reached are those with a line executed
    hit=$("$cov" report "$prog" -instr-profile="$data" -show-functions $files |
      awk '$5 ~ /^[0-9]+$/ && $6 ~ /^[0-9]+$/ && $1 != "TOTAL" && $6 < $5 { l += $5; m += $6 }
           END { if (l) printf "%.2f%% of %d\n", 100 * (l - m) / l, l }')
    printf '%-14s %-26s %-22s %s\n' "$n" "$all" "$hit" "$inputs"
  done
  exit 0
fi

case $mode in
  fuzz) time=${FUZZ_TIME:-60} ;;
  smoke) time=${FUZZ_TIME:-2} ;;
  *) echo "fuzz: unknown mode $mode" >&2; exit 1 ;;
esac

san="-fsanitize=address,undefined -fno-sanitize-recover=all"
build "$work/build" "-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $san" \
  "$san" FUZZ_MAIN= FUZZ_LINK=-fsanitize=fuzzer

failed=
summary=$work/logs/summary
: >"$summary"
for n in $names; do
  prog=$work/build/tests/fuzz/fuzz_$n
  seeds=$src/tests/fuzz/corpus/$n
  corpus=$work/corpus/$n
  log=$work/logs/$n.log
  mkdir -p "$corpus"
  dict=$work/dict/$n.dict
  : >"$dict"
  for d in $(field "$n" 2); do cat "$src/tests/fuzz/dict/$d.dict" >>"$dict"; done
  # Every input kept in the source tree first, one by one: a crash found
  # once stays found.
  # shellcheck disable=SC2046
  if ! "$prog" -timeout=10 $(find "$seeds" -type f | sort) >"$work/logs/$n-replay.log" 2>&1; then
    tail -n 40 "$work/logs/$n-replay.log" >&2
    echo "fuzz: $n: an input of $seeds fails (log: $work/logs/$n-replay.log)" >&2
    failed="$failed $n"
    continue
  fi
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$prog" -max_total_time="$time" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -dict="$dict" -artifact_prefix="$work/crashes/$n-" \
    "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  files=$(find "$corpus" -type f | wc -l)
  if [ $rc -ne 0 ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed|.*runtime error|artifact_prefix|Test unit written)' "$log" | head -n 8 >&2
    echo "fuzz: $n: FAILED (exit $rc; log: $log)" >&2
    failed="$failed $n"
    result=FAILED
  else
    result=ok
  fi
  printf '%-14s %10s execs %7s/s  cov %5s  ft %6s  corpus %5s  %s\n' "$n" \
    "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$files" "$result" | tee -a "$summary"
done

if [ -n "$failed" ]; then
  echo "fuzz: failed:$failed (crashing inputs in $work/crashes)" >&2
  exit 1
fi
echo "fuzz: every target ran ${time}s without a finding"
