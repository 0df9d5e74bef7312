/* demo_client: the demo's stand-in for `aiplat-rag ingest` while that tool
 * is not built (tools/demo.sh uses the tool when it is). Settings from the
 * environment (EMBEDDINGS_URL, VECTOR_STORE_PATH).
 *
 *   demo_client ingest DIR     the .md files of DIR into the local store
 * Exit status: 0 done, 2 anything else. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_testutil.h"

int main(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "ingest") != 0) {
    fprintf(stderr, "usage: demo_client ingest DIR\n");
    return 2;
  }
  const char *url = getenv("EMBEDDINGS_URL"), *store = getenv("VECTOR_STORE_PATH");
  size_t n = url && store ? ct_ingest_dir(argv[2], store, url) : 0;
  if (!n) {
    fprintf(stderr, "demo_client: nothing ingested (EMBEDDINGS_URL, VECTOR_STORE_PATH set?)\n");
    return 2;
  }
  printf("ingested %zu passages from %s into %s\n", n, argv[2], store);
  return 0;
}
