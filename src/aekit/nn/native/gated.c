/* ---- the Gated SAE's magnitude path, one pass forward and one backward ---------------------------------------
 * f = 1[pre > 0] · max(s·pre + b, 0) entry by entry, s = exp(r_mag) and b = b_mag per latent (Rajamanoharan et al.
 * 2024a). As PyTorch elementwise ops the forward and backward take about a dozen passes over the (batch × n)
 * matrices; here each is one. An entry is active when pre > 0 and s·pre + b > 0 (ReLU's gradient at 0 is 0).
 */

void aekit_gated_forward(const float *pre, const float *s, const float *b, int64_t rows, int64_t n, float *f) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *p = pre + r * n;
        float *out = f + r * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            const float m = s[j] * p[j] + b[j];
            out[j] = p[j] > 0.0f && m > 0.0f ? m : 0.0f;
        }
    }
}

#define GATED_CHUNK 256 /* rows per partial column sum: fixed, so the sums do not depend on the thread count */

/* grad_pre = grad · active · s; col_pre[j] = Σ_r grad · active · pre and col_one[j] = Σ_r grad · active (the
 * gradients of r_mag, up to the factor s, and of b_mag), summed over fixed chunks of rows in order. Returns
 * nonzero when out of memory. */
int aekit_gated_backward(const float *grad, const float *pre, const float *s, const float *b, int64_t rows, int64_t n,
                         float *grad_pre, float *col_pre, float *col_one) {
    const int64_t chunks = (rows + GATED_CHUNK - 1) / GATED_CHUNK;
    float *partial = calloc((size_t)(chunks > 0 ? chunks : 1) * 2 * (size_t)n, sizeof(float));
    if (!partial) return 1;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        float *sum_pre = partial + c * 2 * n, *sum_one = sum_pre + n;
        const int64_t end = (c + 1) * GATED_CHUNK < rows ? (c + 1) * GATED_CHUNK : rows;
        for (int64_t r = c * GATED_CHUNK; r < end; r++) {
            const float *g = grad + r * n, *p = pre + r * n;
            float *out = grad_pre + r * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) {
                const float gm = p[j] > 0.0f && s[j] * p[j] + b[j] > 0.0f ? g[j] : 0.0f;
                out[j] = gm * s[j];
                sum_pre[j] += gm * p[j];
                sum_one[j] += gm;
            }
        }
    }
    for (int64_t j = 0; j < n; j++) col_pre[j] = col_one[j] = 0.0f;
    for (int64_t c = 0; c < chunks; c++)
        for (int64_t j = 0; j < n; j++) {
            col_pre[j] += partial[c * 2 * n + j];
            col_one[j] += partial[c * 2 * n + n + j];
        }
    free(partial);
    return 0;
}
