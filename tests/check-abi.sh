#!/bin/sh
# The ABI guard can fail (docs/decisions/0013-debian-packaging-and-abi.md).
# In a throwaway copy of the tree, built with -g, `make abi-check` against
# the stored baseline abi/<SONAME>.abi:
#   - passes on the tree as it is, and with a function added in a new
#     version node (AIPLAT_1.1) and an enumerator appended;
#   - fails with a function added to the node the baseline records
#     (AIPLAT_1.0 is closed);
#   - passes, listing them, an experimental function changed and one
#     removed (version node AIPLAT_EXPERIMENTAL, outside the promise);
#   - passes with a member added to a private struct (behind a handle);
#   - fails with a function removed, a parameter type changed, a parameter
#     added, a return type changed, a callback type changed, an
#     enumerator's value changed;
#   - passes for a removal when the SONAME changed too (lib/soname.mk);
#   - fails on a library without debug info;
#   - and `make abi-baseline` refuses to overwrite a baseline it breaks.
# Not part of `make check` (it builds the library several times); CI runs
# it. Usage: tests/check-abi.sh   (from anywhere; needs abigail-tools)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
command -v abidiff >/dev/null 2>&1 || { echo "check-abi: abidiff missing: apt-get install abigail-tools" >&2; exit 1; }
jobs=${JOBS:-2}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-abi.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"

# A copy of the files git knows (committed or not), never the build trees;
# from a release tarball, the whole tree.
mkdir "$tmp/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp/src")
else
  (cd "$src" && tar -cf - --exclude='./build*' .) | (cd "$tmp/src" && tar -xf -)
fi
ls "$tmp/src"/abi/*.abi >/dev/null 2>&1 || { echo "check-abi: no baseline in abi/" >&2; exit 1; }
cd "$tmp/src"
autoreconf -fi >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
mkdir "$tmp/build"; cd "$tmp/build"
"$tmp/src/configure" --quiet CFLAGS="-g -O2" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
make -j"$jobs" >"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }

s="$tmp/src"
pristine="$tmp/pristine"
mkdir "$pristine"
cp -a "$s/include" "$s/lib" "$pristine/"
restore() {
  # Only edited files get a new time, so make rebuilds only what they touch.
  (cd "$pristine" && find include lib -type f) | while read -r f; do
    cmp -s "$pristine/$f" "$s/$f" || cp "$pristine/$f" "$s/$f"
  done
}
fails=0
# expect pass|fail NAME [make target]
expect() {
  want=$1 name=$2 target=${3:-abi-check}
  make -j"$jobs" lib/libaiplat.la >"$log" 2>&1 || { echo "check-abi: $name: the library did not build" >&2; tail -n 30 "$log" >&2; fails=$((fails + 1)); return 0; }
  if make -s "$target" >"$log" 2>&1; then got=pass; else got=fail; fi
  if [ "$got" = "$want" ]; then
    echo "ok: $name: $target: $got"
    grep -m 4 -E '^ +(\[[A-Z]\]|added:)|^abi-' "$log" | sed 's/^/    /' || true
  else
    echo "FAIL: $name: $target should ${want} but did ${got}" >&2
    sed 's/^/    /' "$log" >&2
    fails=$((fails + 1))
  fi
}
# Edit the public header and the definition together, as a developer would.
edit() { file=$1; shift; for e in "$@"; do sed -i -e "$e" "$s/$file"; done; }

expect pass "unchanged tree"

edit include/aiplat/common.h 's|^AIPLAT_API void aiplat_cleanup(void);|&\n/** Probe.\n * @since 1.1\n */\nAIPLAT_API int aiplat_abi_probe_added(void);|' \
  's|AIPLAT_ERR_INTERNAL = 23 |AIPLAT_ERR_INTERNAL = 23, AIPLAT_ERR_ABI_PROBE = 24 |'
printf '\nAIPLAT_API int aiplat_abi_probe_added(void) { return 1; }\n' >> "$s/lib/core.c"
printf '\nAIPLAT_1.1 {\n  global:\n    aiplat_abi_probe_added;\n} AIPLAT_1.0;\n' >> "$s/lib/libaiplat.vers"
grep -q AIPLAT_ERR_ABI_PROBE "$s/include/aiplat/common.h" || { echo "check-abi: enum edit did not apply" >&2; exit 1; }
expect pass "function added in AIPLAT_1.1, enumerator appended"
grep -q 'added: .*aiplat_abi_probe_added' "$log" \
  || { echo "FAIL: the added function is not listed" >&2; sed 's/^/    /' "$log" >&2; fails=$((fails + 1)); }
restore

# A released node is closed: the same function in AIPLAT_1.0 fails.
edit include/aiplat/common.h 's|^AIPLAT_API void aiplat_cleanup(void);|&\n/** Probe.\n * @since 1.0\n */\nAIPLAT_API int aiplat_abi_probe_added(void);|'
printf '\nAIPLAT_API int aiplat_abi_probe_added(void) { return 1; }\n' >> "$s/lib/core.c"
edit lib/libaiplat.vers 's|^    aiplat_cleanup;|&\n    aiplat_abi_probe_added;|'
grep -q 'aiplat_abi_probe_added;' "$s/lib/libaiplat.vers" || { echo "check-abi: version script edit did not apply" >&2; exit 1; }
expect fail "function added to the released node AIPLAT_1.0"
grep -q 'aiplat_abi_probe_added in AIPLAT_1.0' "$log" \
  || { echo "FAIL: the message does not name the function and its node" >&2; sed 's/^/    /' "$log" >&2; fails=$((fails + 1)); }
restore

# The experimental tier may change: a parameter type and a removal pass,
# and are listed.
edit include/aiplat/subject.h 's/aiplat_subject_token_check(const char \*token)/aiplat_subject_token_check(const char *token, int strict)/'
edit lib/subject.c 's/^AIPLAT_API aiplat_status aiplat_subject_token_check(const char \*token)/AIPLAT_API aiplat_status aiplat_subject_token_check(const char *token, int strict)/'
for f in $(grep -rl 'aiplat_subject_token_check(' "$s/lib" | grep -v '/subject[.]c$'); do
  sed -i 's/aiplat_subject_token_check(\([^,()]*\))/aiplat_subject_token_check(\1, 0)/g' "$f"
done
sed -i 's/aiplat_subject_token_check(\([^,()]*\))/aiplat_subject_token_check(\1, 0)/g' "$s/lib/subject.c"
edit include/aiplat/voice.h '/aiplat_voice_last_error(/,/;/d'
edit lib/libaiplat.vers '/aiplat_voice_last_error;/d'
grep -q 'int strict' "$s/lib/subject.c" || { echo "check-abi: experimental edit did not apply" >&2; exit 1; }
expect pass "experimental function changed and one removed"
grep -q 'experimental interfaces changed' "$log" && grep -q 'aiplat_voice_last_error' "$log" \
  && grep -q 'aiplat_subject_token_check' "$log" \
  || { echo "FAIL: the experimental changes are not listed" >&2; sed 's/^/    /' "$log" >&2; fails=$((fails + 1)); }
restore

# The structs behind the opaque handles are private: their layout may change.
edit lib/bus_internal.h 's/^struct aiplat_bus {/&\n  int abi_probe_member;/'
grep -q abi_probe_member "$s/lib/bus_internal.h" || { echo "check-abi: struct edit did not apply" >&2; exit 1; }
expect pass "member added to a private struct"
restore

# Removed: the declaration and the export go; the library's own callers use
# a renamed internal function.
edit include/aiplat/common.h '/aiplat_error_clear(void);/d'
edit lib/libaiplat.vers '/^    aiplat_error_clear;/d'
for f in $(grep -rl 'aiplat_error_clear' "$s/lib" --include='*.[ch]'); do
  sed -i -e 's/^AIPLAT_API void aiplat_error_clear(void)/void aip_probe_error_clear(void)/' \
    -e 's/aiplat_error_clear()/aip_probe_error_clear()/' -e '1i void aip_probe_error_clear(void);' "$f"
done
grep -q 'aiplat_error_clear(void)' "$s/include/aiplat/common.h" && { echo "check-abi: removal edit did not apply" >&2; exit 1; }
expect fail "function removed"
cp "$s/abi/libaiplat.so.0.abi" "$tmp/baseline.saved"
expect fail "function removed" abi-baseline
cmp -s "$s/abi/libaiplat.so.0.abi" "$tmp/baseline.saved" \
  || { echo "FAIL: the refused abi-baseline changed the baseline" >&2; fails=$((fails + 1)); }
# ... unless the SONAME changes with it.
sed -i 's/^AIPLAT_LT_VERSION_INFO = .*/AIPLAT_LT_VERSION_INFO = 99:0:0/' "$s/lib/soname.mk"
rm -f "$tmp/build/lib/libaiplat.la"
expect pass "function removed with a new SONAME (libaiplat.so.99)"
restore
rm -f "$tmp/build/lib/libaiplat.la"

edit include/aiplat/common.h 's/aiplat_error_last(char \*buf, size_t buflen)/aiplat_error_last(char *buf, unsigned buflen)/'
edit lib/core.c 's/aiplat_error_last(char \*buf, size_t buflen)/aiplat_error_last(char *buf, unsigned buflen)/'
grep -q 'unsigned buflen' "$s/lib/core.c" || { echo "check-abi: signature edit did not apply" >&2; exit 1; }
expect fail "parameter type changed (size_t -> unsigned)"
restore

edit include/aiplat/common.h 's/aiplat_error_last(char \*buf, size_t buflen)/aiplat_error_last(char *buf, size_t buflen, int flags)/'
edit lib/core.c 's/aiplat_error_last(char \*buf, size_t buflen)/aiplat_error_last(char *buf, size_t buflen, int flags)/'
for f in $(grep -rl 'aiplat_error_last(' "$s/lib" | grep -v '/core[.]c$'); do
  sed -i 's/aiplat_error_last(\([^,()]*\), \([^()]*\))/aiplat_error_last(\1, \2, 0)/' "$f"
done
expect fail "parameter added"
restore

edit include/aiplat/common.h 's/^AIPLAT_API uint32_t aiplat_version_number(void);/AIPLAT_API uint64_t aiplat_version_number(void);/'
edit lib/core.c 's/^AIPLAT_API uint32_t aiplat_version_number(void)/AIPLAT_API uint64_t aiplat_version_number(void)/'
grep -q 'uint64_t aiplat_version_number' "$s/lib/core.c" || { echo "check-abi: return-type edit did not apply" >&2; exit 1; }
expect fail "return type changed (uint32_t -> uint64_t)"
restore

edit include/aiplat/bus.h 's/^typedef void (\*aiplat_bus_msg_fn)(aiplat_bus_msg \*msg, void \*user_data);/typedef void (*aiplat_bus_msg_fn)(aiplat_bus_msg *msg, int extra, void *user_data);/'
edit lib/bus_sub.c 's/sub->fn(m, sub->ud)/sub->fn(m, 0, sub->ud)/'
grep -q 'int extra' "$s/include/aiplat/bus.h" || { echo "check-abi: callback edit did not apply" >&2; exit 1; }
expect fail "callback type gained a parameter"
restore

edit include/aiplat/common.h 's/AIPLAT_ERR_IO = 5,/AIPLAT_ERR_IO = 55,/'
grep -q 'AIPLAT_ERR_IO = 55' "$s/include/aiplat/common.h" || { echo "check-abi: enum edit did not apply" >&2; exit 1; }
expect fail "enumerator value changed (AIPLAT_ERR_IO 5 -> 55)"
restore

make -j"$jobs" lib/libaiplat.la >"$log" 2>&1
so=$(readlink -f "$tmp/build/lib/.libs/libaiplat.so")
cp "$so" "$tmp/stripped.so" && strip --strip-debug "$tmp/stripped.so"
if make -s abi-check ABI_LIBRARY="$tmp/stripped.so" >"$log" 2>&1; then
  echo "FAIL: a library without debug info passed abi-check" >&2; fails=$((fails + 1))
else
  grep -q 'no debug info' "$log" && echo "ok: no debug info: abi-check fails" \
    || { echo "FAIL: no debug info: unexpected message" >&2; cat "$log" >&2; fails=$((fails + 1)); }
fi

expect pass "unchanged tree again"
[ "$fails" -eq 0 ] || { echo "check-abi: $fails case(s) wrong" >&2; exit 1; }
echo "check-abi: the guard passes compatible changes and fails every break tried"
