/* clock: monotonic and wall-clock time helpers. */
#ifndef WARD_CLOCK_H
#define WARD_CLOCK_H

#include <stdint.h>

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC); for durations and deadlines. */
uint64_t clock_mono_ns(void);
/* Monotonic time in milliseconds. */
uint64_t clock_mono_ms(void);
/* Wall-clock Unix time in seconds. */
int64_t clock_unix_s(void);

#endif
