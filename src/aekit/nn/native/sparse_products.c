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
