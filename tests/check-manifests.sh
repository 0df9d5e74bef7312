#!/bin/sh
# The Kubernetes manifests and Dockerfiles in deploy/ follow the platform's
# conventions (docs/decisions/0011-containers-and-manifests.md): yamllint with
# the checked-in .yamllint, then the project's rules (tests/check_manifests.py:
# labels, reloader, probes, resources, secrets, images, Flux ks.yaml, known
# environment variables, securityContext, Dockerfiles).
# Usage: tests/check-manifests.sh                 the deploy tree, then the self-test
#        tests/check-manifests.sh --tree          the deploy tree only
#        tests/check-manifests.sh --self-test     the fixtures only: each bad one
#                                                 rejected for the rule it names
#        tests/check-manifests.sh FILE...         the given files
# Needs yamllint, python3 and python3-yaml (Debian packages of those names).
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
fail() { echo "check-manifests: $*" >&2; exit 1; }

yamllint=${YAMLLINT:-yamllint}
command -v "$yamllint" >/dev/null 2>&1 \
  || fail "yamllint not found: install the Debian package yamllint (apt-get install yamllint)"
py=""
for candidate in "${PYTHON:-python3}" /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
    py=$candidate
    break
  fi
done
[ -n "$py" ] || fail "python3 with the yaml module not found: install the Debian packages python3 python3-yaml"

rules() { "$py" "$src/tests/check_manifests.py" --src "$src" --yamllint "$yamllint" "$@"; }
case ${1:-} in
  "") status=0
      rules --tree "$src/deploy" || status=1
      rules --self-test "$src/tests/fixtures/manifests" || status=1
      exit $status ;;
  --tree) rules --tree "$src/deploy" ;;
  --self-test) rules --self-test "$src/tests/fixtures/manifests" ;;
  -*) fail "unknown option $1" ;;
  *) rules "$@" ;;
esac
