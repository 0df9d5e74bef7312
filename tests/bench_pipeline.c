/* Bench: submit a run and poll it to its end, against the Argo and
 * Kubeflow fakes on loopback. Prints calls per second and the mean time of
 * one call; what it measures is the client plus the fake (python), so it
 * is a floor for the client's own cost, not a figure for real servers.
 *
 *   tests/bench_pipeline [runs]      (default 200 runs per engine) */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "harness/pipeline_fakes.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(aiplat_pipeline *p, aiplat_pipeline_engine e, int runs) {
  const char *keys[] = {"epochs", "dataset"};
  const char *values[] = {"3", "s3://bucket/data"};
  long calls = 0;
  double t0 = now_s();
  for (int i = 0; i < runs; i++) {
    char *id = NULL;
    if (aiplat_pipeline_submit(p, e, "train", NULL, keys, values, 2, &id) !=
        AIPLAT_OK) {
      char msg[512];
      aiplat_pipeline_last_error(p, msg, sizeof msg);
      fprintf(stderr, "submit: %s\n", msg);
      return 1;
    }
    calls++;
    aiplat_pipeline_phase ph = AIPLAT_PIPELINE_UNKNOWN;
    while (!aiplat_pipeline_phase_is_terminal(ph)) {
      if (aiplat_pipeline_status(p, e, id, NULL, &ph, NULL, 0) != AIPLAT_OK) {
        aiplat_free(id);
        return 1;
      }
      calls++;
    }
    aiplat_free(id);
  }
  double dt = now_s() - t0;
  printf("%-8s %d runs, %ld calls in %.2f s: %.0f calls/s, %.2f ms per call\n",
         aiplat_pipeline_engine_str(e), runs, calls, dt, (double)calls / dt,
         dt * 1000.0 / (double)calls);
  return 0;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 200;
  if (runs < 1) runs = 1;
  const char *a[] = {"--template", "train", NULL};
  const char *k[] = {"--pipeline", "train", NULL};
  th_fake *argo = th_fake_start("argo_fake.py", a);
  th_fake *kfp = th_fake_start("kfp_fake.py", k);
  aiplat_config *cfg = NULL;
  aiplat_pipeline *p = NULL;
  int rc = 1;
  if (!argo || !kfp || aiplat_config_create(&cfg) != AIPLAT_OK) goto out;
  aiplat_config_set(cfg, "ARGO_URL", th_fake_url(argo));
  aiplat_config_set(cfg, "KUBEFLOW_URL", th_fake_url(kfp));
  aiplat_log_set_level(AIPLAT_LOG_WARNING);
  if (aiplat_pipeline_create(&p, cfg) != AIPLAT_OK) goto out;
  rc = bench(p, AIPLAT_PIPELINE_ARGO, runs) ||
       bench(p, AIPLAT_PIPELINE_KUBEFLOW, runs);
out:
  aiplat_pipeline_destroy(p);
  aiplat_config_destroy(cfg);
  th_fake_stop(argo);
  th_fake_stop(kfp);
  return rc;
}
