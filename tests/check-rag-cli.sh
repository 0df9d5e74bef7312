#!/bin/sh
# aiplat-rag against the local model backend and a local store: ingest the
# sample knowledge base, query it (text and --json), the context, delete,
# and every documented exit status.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
build=${top_builddir:-$src}
tool="$build/tools/aiplat-rag/aiplat-rag"
backend="$build/tools/model-backend/aiplat-model-backend"
py=${PYTHON3:-python3}
[ -x "$tool" ] || { echo "check-rag-cli: $tool not built" >&2; exit 1; }
[ -x "$backend" ] || { echo "check-rag-cli: $backend not built" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
LOG_LEVEL=WARNING "$backend" --port 0 --port-file "$tmp/port" --no-stt \
  >"$tmp/backend.log" 2>&1 &
pid=$!
i=0
while [ ! -s "$tmp/port" ]; do
  i=$((i + 1))
  [ $i -lt 300 ] || { echo "check-rag-cli: the backend did not start" >&2; cat "$tmp/backend.log" >&2; exit 1; }
  sleep 0.1
done
port=$(cat "$tmp/port")

unset MILVUS_HOST MILVUS_TOKEN RERANKER_URL RAG_TOP_K RAG_MIN_SCORE \
  RAG_CANDIDATES RAG_CONTEXT_CHARS VECTOR_STORE_PATH_FILE 2>/dev/null || true
export EMBEDDINGS_URL="http://127.0.0.1:$port" VECTOR_STORE=local \
  VECTOR_STORE_PATH="$tmp/kb.aipvs" LOG_LEVEL=WARNING HTTP_MAX_RETRIES=0

fail() { echo "check-rag-cli: $*" >&2; exit 1; }
# expect STATUS COMMAND...: run it, check its exit status, keep its output.
expect() {
  want=$1
  shift
  set +e
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  set -e
  [ "$got" -eq "$want" ] || {
    cat "$tmp/out" "$tmp/err" >&2
    fail "'$*' exited $got, expected $want"
  }
}
has() { grep -q -- "$1" "$tmp/$2" || { cat "$tmp/$2" >&2; fail "no '$1' in $2"; }; }

# Usage and help: 0 and 2 (docs/exit-status.md).
expect 0 "$tool" --help
has "Exit status" out
has "3  unavailable" out
expect 0 "$tool" --version
has "aiplat-rag " out
expect 2 "$tool"
expect 2 "$tool" frobnicate
has "unknown command" err
expect 2 "$tool" query
expect 2 "$tool" query ""
expect 2 "$tool" query one two
expect 2 "$tool" --top-k x query q
expect 2 "$tool" --bogus count
expect 2 "$tool" count extra
expect 2 "$tool" ingest
expect 2 "$tool" --chunk-chars 10 ingest "$src/examples/knowledge"
expect 2 "$tool" --source x ingest "$src/examples/knowledge"

# Configuration: 4.
expect 4 env VECTOR_STORE=redis "$tool" count
has "VECTOR_STORE" err
expect 4 env RAG_TOP_K=0 "$tool" count
expect 4 env EMBEDDINGS_URL=not-a-url "$tool" count

# Nothing stored yet.
expect 0 "$tool" count
[ "$(cat "$tmp/out")" = 0 ] || fail "count of an empty store: $(cat "$tmp/out")"
expect 0 "$tool" query "anything"
has "no passages found" out

# Ingest: a directory walk, notes for other files, then nothing to redo.
mkdir -p "$tmp/docs/sub" "$tmp/docs/.hidden"
cp "$src"/examples/knowledge/*.md "$tmp/docs/"
printf 'Zebra notes: zebras have stripes.\n' > "$tmp/docs/sub/zebra.txt"
printf 'secret\n' > "$tmp/docs/.hidden/secret.md"
printf '\000\001binary' > "$tmp/docs/image.png"
expect 0 "$tool" ingest "$tmp/docs"
has "^backups.md: [0-9]* passages* (new)$" out
has "sub/zebra.txt: 1 passage (new)" out
has "image.png: skipped" err
grep -q secret "$tmp/out" "$tmp/err" && fail "a hidden file was read"
has "7 files, " out
expect 0 "$tool" ingest "$tmp/docs"
has "^backups.md: [0-9]* passages* (unchanged)$" out
has "0 new, 0 replaced, 7 unchanged" out
expect 0 "$tool" count
total=$(cat "$tmp/out")
[ "$total" -gt 7 ] || fail "count $total"

# Query: ranked passages, text and JSON.
expect 0 "$tool" query "How often are Milvus backups taken?"
head -n 1 "$tmp/out" | grep -q '^1\. [0-9.]*  backups\.md$' || { cat "$tmp/out" >&2; fail "backups.md is not first"; }
has "every night" out
expect 0 "$tool" --json --top-k 2 query "Which port exposes the liveness probe /health?"
"$py" - "$tmp/out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"]
assert len(r) == 2, r
assert r[0]["rank"] == 1 and r[0]["source"] == "onboarding.md", r[0]
assert "8080" in r[0]["text"]
assert r[0]["score"] >= r[1]["score"]
assert r[0]["metadata"] == {"title": "Onboarding a new service"}, r[0]
assert d["reranked"] is False and d["store"] == "local"
EOF
expect 0 "$tool" query --source messaging.md --top-k 3 "How are backups of chat messages taken?"
has "messaging.md$" out
grep -v '^   ' "$tmp/out" | grep -v 'messaging.md$' && fail "--source let another source through"
expect 0 "$tool" query --min-score 0.99 "How often are Milvus backups taken?"
has "no passages found" out

# Context for a prompt, within its budget.
expect 0 "$tool" context "How often are Milvus backups taken?"
head -n 1 "$tmp/out" | grep -q '^\[1\] (source: backups\.md) ' || { cat "$tmp/out" >&2; fail "context"; }
expect 0 "$tool" --context-chars 200 context "How often are Milvus backups taken?"
[ "$(wc -c < "$tmp/out")" -le 201 ] || fail "context over its budget"
expect 0 "$tool" --json --top-k 1 context "How often are Milvus backups taken?"
"$py" -c 'import json,sys; c=json.load(open(sys.argv[1]))["context"]; assert c.startswith("[1] (source: backups.md) ") and "[2]" not in c, c' "$tmp/out"

# With the reranker.
expect 0 env RERANKER_URL="$EMBEDDINGS_URL" "$tool" --json query "How long does a restore of the knowledge base take?"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["reranked"] and d["results"][0]["source"]=="backups.md", d' "$tmp/out"
expect 0 env RERANKER_URL="$EMBEDDINGS_URL" "$tool" --no-rerank --json query "backups"
"$py" -c 'import json,sys; assert not json.load(open(sys.argv[1]))["reranked"]' "$tmp/out"

# Inputs that are not text: 5, the others still go in.
printf 'caf\351\n' > "$tmp/latin1.md"
printf 'A fine note about kettles.\n' > "$tmp/kettle.md"
expect 5 "$tool" ingest "$tmp/latin1.md" "$tmp/missing.md" "$tmp/kettle.md"
has "latin1.md: failed" err
has "missing.md: failed" err
has "kettle.md: 1 passage (new)" out
expect 0 "$tool" --source notes/kettle ingest "$tmp/kettle.md"
has "notes/kettle: 1 passage (new)" out

# Delete.
expect 0 "$tool" delete backups.md notes/kettle
expect 0 "$tool" query --source backups.md "backups"
has "no passages found" out

# Verify, then compact: the deleted passages leave the file, what is
# left is still found, and the file checks whole.
expect 0 "$tool" verify
has "ok               yes" out
live_before=$(sed -n 's/^live  *\([0-9]*\)$/\1/p' "$tmp/out")
size_before=$(stat -c %s "$tmp/kb.aipvs")
expect 0 "$tool" compact
size_after=$(stat -c %s "$tmp/kb.aipvs")
[ "$size_after" -lt "$size_before" ] || fail "compact: $size_before bytes before, $size_after after"
expect 0 "$tool" --json verify
has '"ok": true' out
expect 0 "$tool" verify
[ "$(sed -n 's/^live  *\([0-9]*\)$/\1/p' "$tmp/out")" = "$live_before" ] || fail "compact changed the live passages"
expect 0 "$tool" query "How often are Milvus backups taken?"
expect 2 "$tool" compact extra
# a damaged record: verify says so (1) and the file is left as it is
cp "$tmp/kb.aipvs" "$tmp/damaged.aipvs"
printf '\377\377\377\377' | dd of="$tmp/damaged.aipvs" bs=1 seek=$((size_after / 2)) conv=notrunc 2>/dev/null
expect 1 env VECTOR_STORE_PATH="$tmp/damaged.aipvs" "$tool" verify
has "ok               no" out
# Milvus manages its own files
expect 1 env VECTOR_STORE=milvus MILVUS_HOST=127.0.0.1 MILVUS_PORT=1 "$tool" compact
has "Milvus" err

# Backends that cannot be reached: 3; a store file that is not one: 1.
expect 3 env EMBEDDINGS_URL=http://127.0.0.1:1 "$tool" query "How often are Milvus backups taken?"
has "embedding the question" err
expect 3 env RERANKER_URL=http://127.0.0.1:1 "$tool" query "backups"
has "reranking" err
expect 3 env VECTOR_STORE=milvus MILVUS_HOST=127.0.0.1 MILVUS_PORT=1 "$tool" count
has "milvus" err
printf 'not a store\n' > "$tmp/bad.aipvs"
expect 1 env VECTOR_STORE_PATH="$tmp/bad.aipvs" "$tool" count
echo "check-rag-cli: ingest, query, context, delete and exit statuses as documented"
