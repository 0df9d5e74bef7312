#!/bin/sh
# LOG_COMPILER for `make check-valgrind`: runs test programs under memcheck
# (through libtool for uninstalled programs), scripts as they are.
prog=$1
case $prog in
  *.sh|*.py) exec "$@" ;;
esac
top=${top_builddir:-.}
src=${top_srcdir:-.}
export CK_FORK=no
vg="valgrind --quiet --fair-sched=try --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-fds=no --suppressions=$src/tests/valgrind.supp"
if grep -q "libtool wrapper" "$prog" 2>/dev/null || head -c 2 "$prog" | grep -q '#!'; then
  exec "$top/libtool" --mode=execute $vg "$@"
fi
exec $vg "$@"
