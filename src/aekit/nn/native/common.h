/* Shared by every kernel file: headers and per-thread scratch. See kernels.c. */
#pragma once
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* One malloc'd block holding `per_thread` bytes (64-byte aligned slices) for every thread of the next parallel
 * region; a thread finds its slice at block + *stride · omp_get_thread_num(). NULL when out of memory. */
static char *thread_scratch(size_t per_thread, size_t *stride) {
    *stride = (per_thread + 63) & ~(size_t)63;
    return malloc(*stride * (size_t)omp_get_max_threads());
}
