#!/bin/sh
# Print the README's configuration table from lib/config_table.h, the one
# place settings are declared.
set -eu
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
echo "| variable | default | secret | meaning |"
echo "|---|---|---|---|"
sed -n 's/^ *X(\([A-Z0-9_]*\), *\(NULL\|"[^"]*"\), *[A-Z]*, *\([01]\), *"\(.*\)") *\\\{0,1\}$/\1|\2|\3|\4/p' \
  "$src/lib/config_table.h" |
while IFS='|' read -r name def secret desc; do
  [ "$def" = NULL ] && def="" || def="\`$(echo "$def" | tr -d '"')\`"
  [ "$secret" = 1 ] && secret="yes (\`${name}_FILE\`)" || secret=""
  echo "| \`$name\` | $def | $secret | $desc |"
done
