#!/bin/sh
# Turn doxygen's section-3 pages (IN/man3) into the installed set (OUT):
# the page of header aiplat/X.h becomes aiplat_X(3), aiplat.h's becomes
# aiplat(3) with a SEE ALSO naming every header's page; the per-function,
# per-type and per-constant link pages (.so) point at the renamed pages.
# Any other page doxygen makes (none today) is left out, so nothing but
# aiplat* and AIPLAT_* lands in man3.
# Characters outside ASCII become groff's \[uXXXX], so the pages render the
# same without preconv.
# Usage: man3.sh IN OUT VERSION
set -eu
in=$1 out=$2 version=$3
rm -rf "$out"
mkdir -p "$out"
page_of() { # the installed name of header X's page
  if [ "$1" = aiplat ]; then echo aiplat; else echo "aiplat_$1"; fi
}
ascii() { perl -CSD -pe 's/([^\x00-\x7f])/sprintf("\\[u%04X]", ord($1))/ge'; }
groups=
for f in "$in"/*.h.3; do
  [ -e "$f" ] || { echo "man3.sh: no header pages in $in" >&2; exit 1; }
  x=${f##*/}; x=${x%.h.3}
  n=$(page_of "$x")
  # .TH "aiplat/X.h" 3 "date" "libaiplat" -> .TH "NAME" 3 "date" "libaiplat VERSION" "libaiplat"
  sed -e "1s|^\.TH \"aiplat/$x\.h\" 3 \(\"[^\"]*\"\).*|.TH \"$n\" 3 \1 \"libaiplat $version\" \"libaiplat\"|" \
      -e "s|^aiplat/$x\.h \\\\-|$n \\\\- <aiplat/$x.h>:|" "$f" | ascii > "$out/$n.3"
  [ "$n" = aiplat ] || groups="$groups $n"
done
# aiplat(3): the umbrella, and where each group's page is.
{
  echo '.SH "SEE ALSO"'
  sep=
  for g in $groups; do printf '%s.BR %s (3)' "$sep" "$g"; sep=',
'; done
  echo
} >> "$out/aiplat.3"
for f in "$in"/*.3; do
  b=${f##*/}
  case $b in *.h.3) continue ;; esac
  [ ! -e "$out/$b" ] || continue # a header's page has this name: it wins
  case $b in aiplat_*|AIPLAT_*) ;; *) echo "man3.sh: left out $b" >&2; continue ;; esac
  t=$(sed -n '1s|^\.so man3/\(.*\)\.h\.3$|\1|p' "$f")
  if [ -n "$t" ]; then
    echo ".so man3/$(page_of "$t").3" > "$out/$b"
  else
    ascii < "$f" > "$out/$b"
  fi
done
