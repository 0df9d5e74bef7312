#!/bin/sh
# tests/check-exports.sh enforces the API tiers
# (docs/decisions/0004-abi-and-versioning.md). Against the built library and
# a copy of the headers with one mistake each, it must fail when:
#   - a declaration has no @since line, or two;
#   - a stable function says @since 1.1 but is exported in AIPLAT_1.0;
#   - an experimental function loses its @experimental marker;
#   - a stable function is marked @experimental;
#   - a function is declared but not named in lib/libaiplat.vers (here: a
#     declaration the library does not export);
# and pass on the headers as they are. Then README.md's list of what is
# stable and what is experimental must match the headers.
set -eu
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
build=$(cd "${top_builddir:-$src}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-api-tiers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
# case NAME pass|fail SED-SCRIPT HEADER [PATTERN-IN-OUTPUT]
case_() {
  name=$1 want=$2 script=$3 hdr=$4 pattern=${5:-}
  rm -rf "$tmp/src"; mkdir -p "$tmp/src/include" "$tmp/src/lib"
  cp -R "$src/include/aiplat" "$tmp/src/include/"
  cp "$src"/lib/*.c "$src"/lib/*.h "$tmp/src/lib/"
  if [ -n "$script" ]; then
    cp "$tmp/src/include/aiplat/$hdr" "$tmp/before.h"
    sed -i -e "$script" "$tmp/src/include/aiplat/$hdr"
    if cmp -s "$tmp/before.h" "$tmp/src/include/aiplat/$hdr"; then
      echo "FAIL: $name: the edit did not apply" >&2; fails=$((fails + 1)); return 0
    fi
  fi
  if top_srcdir="$tmp/src" top_builddir="$build" sh "$src/tests/check-exports.sh" > "$tmp/out" 2>&1; then
    got=pass; else got=fail; fi
  if [ "$got" != "$want" ]; then
    echo "FAIL: $name: check-exports should $want but did $got:" >&2
    sed 's/^/    /' "$tmp/out" >&2; fails=$((fails + 1)); return 0
  fi
  if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$tmp/out"; then
    echo "FAIL: $name: the message does not say '$pattern':" >&2
    sed 's/^/    /' "$tmp/out" >&2; fails=$((fails + 1)); return 0
  fi
  echo "ok: $name: $got"
  [ "$got" = pass ] || sed -n '2,3s/^/    /p' "$tmp/out"
}

case_ "headers as they are" pass "" common.h
# The line numbers of the doc comment of one function: the @since line
# right above `AIPLAT_API ... <fn>(`.
since_of() { # HEADER FUNCTION
  awk -v fn="$2(" 'index($0, fn) && /^AIPLAT_API/ { print last; exit }
    /^ \* @since / { last = NR }' "$src/include/aiplat/$1"
}
n=$(since_of common.h aiplat_version_string)
case_ "no @since" fail "${n}d" common.h "aiplat_version_string: no @since line"
case_ "two @since lines" fail "${n}p" common.h "aiplat_version_string: not one"
case_ "@since 1.1 in node AIPLAT_1.0" fail "${n}s/@since 1.0/@since 1.1/" common.h \
  "aiplat_version_string: exported in AIPLAT_1.0, @since 1.1: belongs in AIPLAT_1.1"
case_ "stable function marked @experimental" fail "${n}a\\ * @experimental" common.h \
  "aiplat_version_string: exported in AIPLAT_1.0, marked @experimental: belongs in AIPLAT_EXPERIMENTAL"
n=$(since_of chat.h aiplat_chat_answer)
case_ "experimental function unmarked" fail "$((n + 1))d" chat.h \
  "aiplat_chat_answer: exported in AIPLAT_EXPERIMENTAL, not marked @experimental: belongs in AIPLAT_1.0"
case_ "declared, not in the version script" fail \
  '/^AIPLAT_API void aiplat_cleanup(void);/a\
/**\
 * Probe.\
 * @since 1.1\
 */\
AIPLAT_API void aiplat_tiers_probe(void);' common.h "-aiplat_tiers_probe"
# The README's list of the tiers is the headers' (section "API stability"):
# each header is named there, and the experimental table names exactly the
# functions marked @experimental (a whole header, or names and name*
# patterns).
sect=$(sed -n '/^## API stability$/,/^## /p' "$src/README.md")
[ -n "$sect" ] || { echo "FAIL: README.md has no section 'API stability'" >&2; exit 1; }
fns_of() { grep -h '^AIPLAT_API' "$src/include/aiplat/$1" | sed -n 's/.*[ *]\(aiplat_[A-Za-z0-9_]*\)(.*/\1/p'; }
for h in "$src"/include/aiplat/*.h; do
  x=${h##*/}
  [ "$x" = aiplat.h ] && continue
  printf '%s\n' "$sect" | grep -q "\`aiplat/$x\`" || { echo "FAIL: README 'API stability' does not name aiplat/$x" >&2; fails=$((fails + 1)); }
done
printf '%s\n' "$sect" | sed -n '/^\*\*Experimental\*\*/,/^Types/p' | grep '^| `aiplat/' > "$tmp/rows" || true
: > "$tmp/listed"
while IFS= read -r row; do
  x=$(printf '%s\n' "$row" | sed -n 's/^| `aiplat\/\([^`]*\)`.*/\1/p')
  if printf '%s\n' "$row" | grep -q '| every function'; then
    fns_of "$x" >> "$tmp/listed"
  else
    for pat in $(printf '%s\n' "$row" | grep -o '`aiplat_[A-Za-z0-9_*]*`' | tr -d '`'); do
      fns_of "$x" | while read -r f; do
        # shellcheck disable=SC2254
        case $f in $pat) echo "$f" ;; esac
      done >> "$tmp/listed"
    done
  fi
done < "$tmp/rows"
sort -u "$tmp/listed" -o "$tmp/listed"
awk '/^ \* @experimental/ { e = 1 } /^AIPLAT_API/ { if (e) print; e = 0 } /^\/\*\*/ { e = 0 }' \
  "$src"/include/aiplat/*.h | sed -n 's/.*[ *]\(aiplat_[A-Za-z0-9_]*\)(.*/\1/p' | sort -u > "$tmp/marked"
if ! diff -u "$tmp/listed" "$tmp/marked" > "$tmp/readme.diff"; then
  echo "FAIL: README's experimental list and the @experimental functions differ (- README only, + headers only):" >&2
  sed 's/^/    /' "$tmp/readme.diff" >&2; fails=$((fails + 1))
else
  echo "ok: README's experimental list names the $(wc -l < "$tmp/marked") @experimental functions"
fi
[ "$fails" -eq 0 ] || { echo "check-api-tiers: $fails case(s) wrong" >&2; exit 1; }
echo "check-api-tiers: check-exports fails every tier mistake tried"
