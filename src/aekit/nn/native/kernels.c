/* aekit's native CPU kernels for the SAE training step (float32, row-major, contiguous).
 *
 * Compiled on first use by aekit/nn/native/__init__.py (cc -O3 -march=native -fopenmp) and called through
 * ctypes, which releases the GIL. OpenMP here resolves to the libgomp that PyTorch already loaded (same
 * soname), so these kernels share PyTorch's thread pool and its thread count instead of competing with it.
 * Every kernel parallelises over output rows, each row summed in a fixed order: results are identical from
 * run to run and for any thread count.
 */
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

/* ---- top-k of (pre + bias) per row ------------------------------------------------------------------------
 * One pass over the row: the bias is added in place (so the caller's matrix becomes the full pre-activations)
 * and every entry above a running threshold t is appended to a small candidate buffer. When the buffer fills,
 * a quickselect keeps its k largest and t becomes the k-th largest value seen so far, so after the first few
 * hundred entries almost nothing passes the test: the pass costs one vector compare per 16 entries. An entry
 * equal to t is skipped, which changes only which of several tied entries is returned.
 */

/* Order-preserving map of floats to unsigned keys: a larger float has a larger key, and NaN (of either sign)
 * the largest key of all, so NaN ranks above every number as in torch.topk. */
static inline uint32_t float_key(float f) {
    union { float f; uint32_t u; } v = {f};
    if (f != f) return 0xFFFFFFFFu;
    return (v.u & 0x80000000u) ? ~v.u : v.u ^ 0x80000000u;
}

typedef struct {
    uint32_t key;
    int64_t index;
} Candidate;

/* Rearrange c[0..n) so that c[0..k) hold k largest keys (in no particular order). */
static void keep_largest(Candidate *c, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t pivot = c[lo + (hi - lo) / 2].key;
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (c[i].key > pivot) i++;
            while (c[j].key < pivot) j--;
            if (i <= j) {
                Candidate tmp = c[i];
                c[i] = c[j];
                c[j] = tmp;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

static uint32_t min_key(const Candidate *c, int64_t n) {
    uint32_t m = c[0].key;
    for (int64_t i = 1; i < n; i++) m = c[i].key < m ? c[i].key : m;
    return m;
}

/* Portable path: scalar scan, quickselect compaction. */
static void topk_row_scalar(float *row, const float *bias, int64_t n, int64_t k, Candidate *buf, int64_t cap,
                            int64_t *idx_out, float *val_out) {
    int64_t count = 0, j = 0;
    for (; j < k; j++) { /* the first k entries are taken unconditionally; t is then their minimum */
        float v = row[j] + (bias ? bias[j] : 0.0f);
        row[j] = v;
        buf[count].key = float_key(v);
        buf[count++].index = j;
    }
    uint32_t t = min_key(buf, count);
    for (; j < n; j++) {
        float v = row[j] + (bias ? bias[j] : 0.0f);
        row[j] = v;
        uint32_t key = float_key(v);
        if (key > t) {
            buf[count].key = key;
            buf[count++].index = j;
            if (count == cap) {
                keep_largest(buf, count, k);
                count = k;
                t = min_key(buf, k);
            }
        }
    }
    if (count > k) keep_largest(buf, count, k);
    for (int64_t i = 0; i < k; i++) {
        idx_out[i] = buf[i].index;
        val_out[i] = row[buf[i].index];
    }
}

#ifdef __AVX512F__
static inline __m512i sortable_keys(__m512 v) { /* float_key for 16 floats */
    __m512i bits = _mm512_castps_si512(v);
    __mmask16 negative = _mm512_movepi32_mask(bits);
    __m512i flipped_sign = _mm512_xor_si512(bits, _mm512_set1_epi32((int)0x80000000u));
    __m512i keys = _mm512_mask_xor_epi32(flipped_sign, negative, bits, _mm512_set1_epi32(-1));
    return _mm512_mask_mov_epi32(keys, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(-1));
}

static inline __mmask16 live_lanes(int64_t remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1);
}

static inline float key_to_float(uint32_t key) {
    union { uint32_t u; float f; } v = {(key & 0x80000000u) ? key ^ 0x80000000u : ~key};
    return v.f;
}

static inline int64_t count_at_least(const float *vals, int64_t n, __m512i key) {
    int64_t count = 0;
    for (int64_t i = 0; i < n; i += 16)
        count += __builtin_popcount(_mm512_mask_cmp_epu32_mask(live_lanes(n - i), sortable_keys(_mm512_loadu_ps(vals + i)),
                                                               key, _MM_CMPINT_NLT));
    return count;
}

/* Shrink the candidates vals/cols[0..n) (n ≥ k) to those at or above a cut, returned in *cut, and return how
 * many remain. The cut is found by bisection on the sortable keys between the smallest and largest candidate,
 * counting with vector compares (no data-dependent branches). Not exact: stop as soon as between k and 2k
 * candidates are at or above the cut — every entry of the row's top k is still kept, and the buffer has room
 * again. Exact (or when ties leave more than 2k): keep precisely k, those above the k-th key and enough equal
 * to it. Kept entries go through tmp (2k + 16 slots) to the front. */
static int64_t shrink_candidates(float *vals, int32_t *cols, int64_t n, int64_t k, int exact, float *tmp_vals,
                                 int32_t *tmp_cols, float *cut) {
    __m512i kmin = _mm512_set1_epi32(-1), kmax = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 live = live_lanes(n - i);
        __m512i keys = sortable_keys(_mm512_loadu_ps(vals + i));
        kmin = _mm512_mask_min_epu32(kmin, live, kmin, keys);
        kmax = _mm512_mask_max_epu32(kmax, live, kmax, keys);
    }
    uint32_t lo = (uint32_t)_mm512_reduce_min_epu32(kmin), hi = (uint32_t)_mm512_reduce_max_epu32(kmax);
    int64_t kept = n; /* invariant: kept = count(key ≥ lo) ≥ k, and count(key > hi) < k */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2 + 1;
        int64_t count = count_at_least(vals, n, _mm512_set1_epi32((int)mid));
        if (count >= k) {
            lo = mid;
            kept = count;
            if (!exact && count <= 2 * k) break;
        } else {
            hi = mid - 1;
        }
    }
    if (kept > 2 * k) exact = 1; /* ties at the cut: only an exact selection frees room */
    const __m512i lo_key = _mm512_set1_epi32((int)lo);
    const int64_t limit = exact ? k : kept;
    int64_t out = 0;
    for (int pass = 0; pass < 2 && out < limit; pass++) { /* exact: above the k-th key first, then ties with it */
        for (int64_t i = 0; i < n && out < limit; i += 16) {
            __m512 v = _mm512_loadu_ps(vals + i);
            __m512i keys = sortable_keys(v);
            __mmask16 m = pass == 0 && exact ? _mm512_mask_cmp_epu32_mask(live_lanes(n - i), keys, lo_key, _MM_CMPINT_NLE)
                          : pass == 0        ? _mm512_mask_cmp_epu32_mask(live_lanes(n - i), keys, lo_key, _MM_CMPINT_NLT)
                                             : _mm512_mask_cmp_epu32_mask(live_lanes(n - i), keys, lo_key, _MM_CMPINT_EQ);
            _mm512_storeu_ps(tmp_vals + out, _mm512_maskz_compress_ps(m, v));
            _mm512_storeu_si512(tmp_cols + out, _mm512_maskz_compress_epi32(m, _mm512_loadu_si512(cols + i)));
            out += __builtin_popcount(m);
        }
    }
    if (out > limit) out = limit;
    memcpy(vals, tmp_vals, (size_t)out * sizeof(float));
    memcpy(cols, tmp_cols, (size_t)out * sizeof(int32_t));
    *cut = key_to_float(lo);
    return out;
}

/* AVX-512 path: every 16 entries cost one compare and an unconditional compressed append (no branch to
 * mispredict); the buffer is compacted to its k largest when it fills. Returns 0, or 1 when fewer than k
 * entries passed (a row of -inf), for the caller to redo the row on the portable path. */
static int topk_row_avx512(float *row, const float *bias, int64_t n, int64_t k, float *vals, int32_t *cols,
                           int64_t cap, float *tmp_vals, int32_t *tmp_cols, int64_t *idx_out, float *val_out) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t count = 0, j = 0;
    float t = -INFINITY;
    __m512 threshold = _mm512_set1_ps(t);
    for (; j + 16 <= n; j += 16) {
        /* software prefetch 8 KB ahead: the hardware prefetcher alone leaves this scan waiting on memory */
        _mm_prefetch((const char *)(row + j + 2048), _MM_HINT_T0);
        __m512 v = _mm512_loadu_ps(row + j);
        if (bias) {
            v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
            _mm512_storeu_ps(row + j, v);
        }
        /* not (v ≤ t): NaN passes, so a NaN ranks above every number, as in torch.topk */
        __mmask16 m = _mm512_cmp_ps_mask(v, threshold, _CMP_NLE_UQ);
        /* early in a row most vectors have entries above t, later almost none: skip those with a branch */
        if (j >= 1024 && !m) continue;
        _mm512_storeu_ps(vals + count, _mm512_maskz_compress_ps(m, v));
        _mm512_storeu_si512(cols + count,
                            _mm512_maskz_compress_epi32(m, _mm512_add_epi32(lane, _mm512_set1_epi32((int)j))));
        count += __builtin_popcount(m);
        if (count > cap - 16) {
            count = shrink_candidates(vals, cols, count, k, 0, tmp_vals, tmp_cols, &t);
            threshold = _mm512_set1_ps(t);
        }
    }
    for (; j < n; j++) {
        float v = row[j] + (bias ? bias[j] : 0.0f);
        row[j] = v;
        if (!(v <= t)) {
            vals[count] = v;
            cols[count++] = (int32_t)j;
        }
    }
    if (count < k) return 1;
    if (count > k) shrink_candidates(vals, cols, count, k, 1, tmp_vals, tmp_cols, &t);
    for (int64_t i = 0; i < k; i++) {
        idx_out[i] = cols[i];
        val_out[i] = vals[i];
    }
    return 0;
}
#endif

/* pre: (rows, n), modified in place to pre + bias (bias may be NULL). idx, val: (rows, k). Requires 1 ≤ k ≤ n,
 * n < 2^31. Returns nonzero when a thread could not allocate its buffers. */
int aekit_bias_topk(float *pre, const float *bias, int64_t rows, int64_t n, int64_t k, int64_t *idx, float *val) {
    const int64_t cap = 8 * k + 64;
    size_t stride; /* per thread: candidates (portable path), then value/column buffers and their copies */
    char *scratch =
        thread_scratch((size_t)cap * sizeof(Candidate) + 2 * (size_t)(cap + 16 + 2 * k + 32) * 4, &stride);
    if (!scratch) return 1;
#pragma omp parallel
    {
        Candidate *buf = (Candidate *)(scratch + stride * (size_t)omp_get_thread_num());
        float *vals = (float *)(buf + cap);
        int32_t *cols = (int32_t *)(vals + cap + 16);
        float *tmp_vals = (float *)(cols + cap + 16);
        int32_t *tmp_cols = (int32_t *)(tmp_vals + 2 * k + 32);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *row = pre + r * n;
#ifdef __AVX512F__
            if (!topk_row_avx512(row, bias, n, k, vals, cols, cap, tmp_vals, tmp_cols, idx + r * k, val + r * k))
                continue;
            /* the row already holds pre + bias: redo the selection without adding the bias again */
            topk_row_scalar(row, NULL, n, k, buf, cap, idx + r * k, val + r * k);
#else
            (void)vals, (void)cols, (void)tmp_vals, (void)tmp_cols;
            topk_row_scalar(row, bias, n, k, buf, cap, idx + r * k, val + r * k);
#endif
        }
    }
    free(scratch);
    return 0;
}

/* ---- products with a sparse (rows × n) matrix S holding k entries per row: S[b, idx[b, j]] = w[b, j] -------
 * All three reduce to two row primitives. Both keep their running sums in registers over a 128-float slice of
 * the output (8 AVX-512 registers) while they stream the gathered rows, instead of loading and storing the
 * output once per gathered row.
 */
#define BLOCK_ROWS 256 /* gathered rows handled per call of the primitives (bounds the pointer arrays) */

/* out[0..d) = (accumulate ? out : 0) + Σ_{e<n} ws[e] · srcs[e][0..d) */
static void weighted_sum_rows(float *out, int64_t d, int64_t n, const float *ws, const float *const *srcs,
                              int accumulate) {
    int64_t c = 0;
#ifdef __AVX512F__
    for (; c + 128 <= d; c += 128) {
        __m512 a[8];
        for (int i = 0; i < 8; i++) a[i] = accumulate ? _mm512_loadu_ps(out + c + 16 * i) : _mm512_setzero_ps();
        for (int64_t e = 0; e < n; e++) {
            const __m512 w = _mm512_set1_ps(ws[e]);
            const float *src = srcs[e] + c;
            for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(src + 16 * i), a[i]);
        }
        for (int i = 0; i < 8; i++) _mm512_storeu_ps(out + c + 16 * i, a[i]);
    }
#endif
    if (c < d) {
        if (!accumulate) memset(out + c, 0, (size_t)(d - c) * sizeof(float));
        for (int64_t e = 0; e < n; e++) {
            const float we = ws[e];
            const float *src = srcs[e];
#pragma omp simd
            for (int64_t t = c; t < d; t++) out[t] += we * src[t];
        }
    }
}

/* out[e] = srcs[e][0..d) · y[0..d) for e < n */
static void dots_with_row(const float *y, int64_t d, int64_t n, const float *const *srcs, float *out) {
    int64_t e0 = 0;
#ifdef __AVX512F__
    for (; e0 + 8 <= n; e0 += 8) { /* eight dot products share every load of y */
        __m512 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
        int64_t c = 0;
        for (; c + 16 <= d; c += 16) {
            const __m512 yv = _mm512_loadu_ps(y + c);
            for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(srcs[e0 + i] + c), yv, a[i]);
        }
        for (int i = 0; i < 8; i++) {
            float s = _mm512_reduce_add_ps(a[i]);
            for (int64_t t = c; t < d; t++) s += srcs[e0 + i][t] * y[t];
            out[e0 + i] = s;
        }
    }
#endif
    for (; e0 < n; e0++) {
        const float *src = srcs[e0];
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t t = 0; t < d; t++) s += src[t] * y[t];
        out[e0] = s;
    }
}

/* One row b of S: out[0..d) = Σ_j w[j] · W[idx[j]] (idx, w: the row's k entries), in blocks of gathered rows. */
static void row_weighted_sum(float *out, const int64_t *idx, const float *w, const float *W, int64_t k, int64_t d,
                             const float **srcs) {
    for (int64_t j0 = 0; j0 < k; j0 += BLOCK_ROWS) {
        const int64_t m = k - j0 < BLOCK_ROWS ? k - j0 : BLOCK_ROWS;
        for (int64_t j = 0; j < m; j++) srcs[j] = W + idx[j0 + j] * d;
        weighted_sum_rows(out, d, m, w + j0, srcs, j0 > 0);
    }
}

/* One row b of S: out[j] = W[idx[j]] · y[0..d) for its k entries. */
static void row_dots(const float *y, const int64_t *idx, const float *W, int64_t k, int64_t d, const float **srcs,
                     float *out) {
    for (int64_t j0 = 0; j0 < k; j0 += BLOCK_ROWS) {
        const int64_t m = k - j0 < BLOCK_ROWS ? k - j0 : BLOCK_ROWS;
        for (int64_t j = 0; j < m; j++) srcs[j] = W + idx[j0 + j] * d;
        dots_with_row(y, d, m, srcs, out + j0);
    }
}

/* out[b] = Σ_j w[b, j] · W[idx[b, j]]            (S @ W; out: (rows, d)) */
void aekit_weighted_row_sum(const int64_t *idx, const float *w, const float *W, int64_t rows, int64_t k, int64_t d,
                            float *out) {
#pragma omp parallel
    {
        const float *srcs[BLOCK_ROWS];
#pragma omp for schedule(static)
        for (int64_t b = 0; b < rows; b++) row_weighted_sum(out + b * d, idx + b * k, w + b * k, W, k, d, srcs);
    }
}

/* out[b, j] = W[idx[b, j]] · y[b]                  (sampled y @ Wᵀ at S's pattern; out: (rows, k)) */
void aekit_gather_dot(const int64_t *idx, const float *W, const float *y, int64_t rows, int64_t k, int64_t d,
                      float *out) {
#pragma omp parallel
    {
        const float *srcs[BLOCK_ROWS];
#pragma omp for schedule(static)
        for (int64_t b = 0; b < rows; b++) row_dots(y + b * d, idx + b * k, W, k, d, srcs, out + b * k);
    }
}

/* out[r] = alpha · Σ_{e in [start[r], start[r+1])} w[entry[e]] · y[entry[e] / k]     (α Sᵀ @ y; out: (n_out, d))
 * `entry` lists the flat positions of S's entries grouped by column r (a stable sort of idx), `start` the group
 * boundaries. Each output row is written once, by one thread, in entry order. With `source` given, output row r
 * reads its rows of y from the matrix that starts at y + source[r] · source_stride (one of several stacked
 * matrices: Matryoshka's per-prefix residuals).
 */
void aekit_scatter_outer(const int64_t *start, const int64_t *entry, const float *w, const float *y, int64_t n_out,
                         int64_t k, int64_t d, float alpha, const int64_t *source, int64_t source_stride, float *out) {
#pragma omp parallel
    {
        const float *srcs[BLOCK_ROWS];
        float ws[BLOCK_ROWS];
#pragma omp for schedule(dynamic, 64)
        for (int64_t r = 0; r < n_out; r++) {
            if (start[r + 1] == start[r]) memset(out + r * d, 0, (size_t)d * sizeof(float));
            const float *y_r = source ? y + source[r] * source_stride : y;
            for (int64_t e0 = start[r]; e0 < start[r + 1]; e0 += BLOCK_ROWS) {
                const int64_t m = start[r + 1] - e0 < BLOCK_ROWS ? start[r + 1] - e0 : BLOCK_ROWS;
                for (int64_t e = 0; e < m; e++) {
                    const int64_t flat = entry[e0 + e];
                    ws[e] = alpha * w[flat];
                    srcs[e] = y_r + (flat / k) * d;
                }
                weighted_sum_rows(out + r * d, d, m, ws, srcs, e0 > start[r]);
            }
        }
    }
}

/* y += add, then r = y − target; returns ||r||². */
static float add_and_residual(float *y, const float *add, const float *target, float *r, int64_t d) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t t = 0; t < d; t++) {
        y[t] += add[t];
        r[t] = y[t] - target[t];
        s += r[t] * r[t];
    }
    return s;
}

/* The decoder and its squared error in one pass, for the SAE's reconstruction loss:
 *   y_hat[b] = Σ_j w[b, j] · W[idx[b, j]] + bias,  r[b] = y_hat[b] − target[b],  sq[b] = ||r[b]||²,
 *   and, when `dots` is given, dots[b, j] = W[idx[b, j]] · r[b] (the loss's gradient with respect to w, up to the
 *   factor 2/rows), computed while the row's gathered decoder rows are still in cache.
 */
void aekit_decode_residual(const int64_t *idx, const float *w, const float *W, const float *bias, const float *target,
                           int64_t rows, int64_t k, int64_t d, float *y_hat, float *r, float *sq, float *dots) {
#pragma omp parallel
    {
        const float *srcs[BLOCK_ROWS];
#pragma omp for schedule(static)
        for (int64_t b = 0; b < rows; b++) {
            float *yb = y_hat + b * d, *rb = r + b * d;
            row_weighted_sum(yb, idx + b * k, w + b * k, W, k, d, srcs);
            sq[b] = add_and_residual(yb, bias, target + b * d, rb, d);
            if (dots) row_dots(rb, idx + b * k, W, k, d, srcs, dots + b * k);
        }
    }
}

/* Matryoshka's nested reconstructions in one pass per row. Entry j of row b belongs to prefix group
 * group[b, j] (0..P−1); the reconstruction from groups 0..p is
 *   ŷ_p[b] = bias + Σ_{j: group ≤ p} w[b, j] · W[idx[b, j]],  r_p[b] = ŷ_p[b] − target[b],  sq[b, p] = ||r_p[b]||²;
 * r is (P, rows, d), y_hat = ŷ_{P−1}. With `dots` (rows, k, P): dots[b, j, p] = W[idx[b, j]] · r_p[b] for the
 * prefixes p ≥ group[b, j] that contain the entry, 0 for the others (every prefix loss's gradient with respect
 * to w, up to its weight). Each decoder row is gathered once per entry. Returns nonzero when a thread could not
 * allocate its scratch row. */
int aekit_nested_decode_residual(const int64_t *idx, const float *w, const int64_t *group, const float *W,
                                 const float *bias, const float *target, int64_t rows, int64_t k, int64_t d,
                                 int64_t P, float *y_hat, float *r, float *sq, float *dots) {
    size_t stride; /* per thread: the row's entries gathered by group (pointers, slots, weights, dots), then the
                    * row's group contributions (P·d) */
    char *scratch = thread_scratch((size_t)k * (sizeof(float *) + sizeof(int64_t) + 2 * sizeof(float)) +
                                   (size_t)(P * d) * sizeof(float), &stride);
    if (!scratch) return 1;
#pragma omp parallel
    {
        const float **srcs = (const float **)(scratch + stride * (size_t)omp_get_thread_num());
        int64_t *slot = (int64_t *)(srcs + k);
        float *ws = (float *)(slot + k);
        float *found = ws + k;
        float *parts = found + k;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < rows; b++) {
            const int64_t *ib = idx + b * k, *gb = group + b * k;
            for (int64_t p = 0; p < P; p++) { /* each group's codes summed with the register-blocked loop */
                int64_t m = 0;
                for (int64_t j = 0; j < k; j++)
                    if (gb[j] == p) {
                        srcs[m] = W + ib[j] * d;
                        ws[m++] = w[b * k + j];
                    }
                weighted_sum_rows(parts + p * d, d, m, ws, srcs, 0);
            }
            float *yb = y_hat + b * d;
            const float *tb = target + b * d;
            memcpy(yb, bias, (size_t)d * sizeof(float));
            for (int64_t p = 0; p < P; p++)
                sq[b * P + p] = add_and_residual(yb, parts + p * d, tb, r + (p * rows + b) * d, d);
            if (!dots) continue;
            for (int64_t p = 0; p < P; p++) { /* prefix p contains the entries of groups 0..p */
                int64_t m = 0;
                for (int64_t j = 0; j < k; j++) {
                    if (gb[j] <= p) {
                        srcs[m] = W + ib[j] * d;
                        slot[m++] = j;
                    } else {
                        dots[(b * k + j) * P + p] = 0.0f;
                    }
                }
                dots_with_row(r + (p * rows + b) * d, d, m, srcs, found);
                for (int64_t i = 0; i < m; i++) dots[(b * k + slot[i]) * P + p] = found[i];
            }
        }
    }
    free(scratch);
    return 0;
}

/* ---- row-wise constraints of a unit-norm decoder ------------------------------------------------------------ */

/* g[r] -= (g[r] · W[r]) W[r] for every row r (the gradient's component along the row removed). */
void aekit_project_rows(float *g, const float *W, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *gr = g + r * d;
        const float *wr = W + r * d;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t t = 0; t < d; t++) dot += gr[t] * wr[t];
#pragma omp simd
        for (int64_t t = 0; t < d; t++) gr[t] -= dot * wr[t];
    }
}

/* W[r] /= max(||W[r]||, eps) for every row r. */
void aekit_normalize_rows(float *W, int64_t n, int64_t d, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *wr = W + r * d;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t t = 0; t < d; t++) ss += wr[t] * wr[t];
        float norm = sqrtf(ss);
        const float inv = 1.0f / (norm > eps ? norm : eps);
#pragma omp simd
        for (int64_t t = 0; t < d; t++) wr[t] *= inv;
    }
}

/* Σ x[i]² in double precision, over fixed 16384-entry chunks summed in order: the same result for any thread
 * count (the gradient norm that clipping compares with its limit). */
double aekit_sum_squares(const float *x, int64_t n) {
    const int64_t chunk = 16384, n_chunks = (n + chunk - 1) / chunk;
    double *partial = malloc((size_t)(n_chunks > 0 ? n_chunks : 1) * sizeof(double));
    if (!partial) return -1.0;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        float s = 0.0f; /* 16384 float terms, vectorised; then promoted */
#pragma omp simd reduction(+ : s)
        for (int64_t i = c * chunk; i < end; i++) s += x[i] * x[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (int64_t c = 0; c < n_chunks; c++) total += partial[c];
    free(partial);
    return total;
}
