/* A fixed pool of worker threads taking jobs from one bounded FIFO queue.
 * The service framework hands each received message to it, so handler
 * concurrency is the number of workers, not the number of subscriptions. */
#ifndef AIPLAT_WORKQ_H
#define AIPLAT_WORKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aip_workq aip_workq;
/* A job runs on a worker thread. With @cancelled true the queue is being
 * destroyed before the job ran: release its resources without working. */
typedef void (*aip_job_fn)(void *arg, bool cancelled);

/* @workers >= 1 threads; @capacity >= 1 queued jobs before submit fails. */
aip_workq *aip_workq_create(unsigned workers, size_t capacity);
/* Queue a job; false when the queue is full or closed (the caller still
 * owns @arg then). */
bool aip_workq_submit(aip_workq *q, aip_job_fn fn, void *arg);
/* Jobs queued plus jobs running. */
size_t aip_workq_pending(aip_workq *q);
/* Stop accepting jobs, then wait up to @timeout_ms for the queue to empty
 * and running jobs to return. True when everything finished. */
bool aip_workq_drain(aip_workq *q, int64_t timeout_ms);
/* Join the workers (after the running jobs return) and cancel what is
 * still queued. */
void aip_workq_destroy(aip_workq *q);

#endif
