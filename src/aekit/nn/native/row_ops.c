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
        double s = 0.0;
        for (int64_t i0 = c * chunk; i0 < end; i0 += 256) { /* float sums of 256 terms (vectorised), then double */
            const int64_t stop = i0 + 256 < end ? i0 + 256 : end;
            float t = 0.0f;
#pragma omp simd reduction(+ : t)
            for (int64_t i = i0; i < stop; i++) t += x[i] * x[i];
            s += t;
        }
        partial[c] = s;
    }
    double total = 0.0;
    for (int64_t c = 0; c < n_chunks; c++) total += partial[c];
    free(partial);
    return total;
}

/* ---- grouping the entries of a sparse code matrix by latent ------------------------------------------------- */

/* A stable counting sort of the flat positions 0..N−1 of idx by their value (0 ≤ idx < n): start (n + 1) holds each
 * value's first slot, entry (N) the positions in order. O(N + n), one thread: cheaper than a parallel sort of
 * 65,536 keys. Returns nonzero when an index is out of range (nothing written past the arrays). */
int aekit_group_by_value(const int64_t *idx, int64_t N, int64_t n, int64_t *start, int64_t *entry) {
    memset(start, 0, (size_t)(n + 1) * sizeof(int64_t));
    for (int64_t e = 0; e < N; e++) {
        if (idx[e] < 0 || idx[e] >= n) return 1;
        start[idx[e] + 1]++;
    }
    for (int64_t r = 0; r < n; r++) start[r + 1] += start[r];
    int64_t *next = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!next) return 2;
    memcpy(next, start, (size_t)n * sizeof(int64_t));
    for (int64_t e = 0; e < N; e++) entry[next[idx[e]]++] = e;
    free(next);
    return 0;
}

/* ---- firing counts of dense codes ------------------------------------------------------------------------------ */

/* counts = the sum of n_threads int32 histograms of n bins in a thread_scratch block (freed), in thread order. */
static void sum_thread_counts(char *scratch, size_t stride, int n_threads, int64_t n, int64_t *counts) {
    for (int64_t l = 0; l < n; l++) counts[l] = 0;
    for (int t = 0; t < n_threads; t++) {
        const int32_t *local = (const int32_t *)(scratch + stride * (size_t)t);
        for (int64_t l = 0; l < n; l++) counts[l] += local[l];
    }
    free(scratch);
}

/* counts[j] = #{b : x[b, j] > 0} for a (rows, n) matrix (NaN does not count): each thread counts a block of rows in
 * its own int32 counters, then the counters are summed in thread order (integers: exact for any thread count).
 * PyTorch's column-wise (x > 0).sum(0) over a 2048 × 8192 batch takes 40–70 ms; this is one pass at memory speed.
 * Returns nonzero when out of memory. */
int aekit_count_positive(const float *x, int64_t rows, int64_t n, int64_t *counts) {
    size_t stride;
    char *scratch = thread_scratch((size_t)n * sizeof(int32_t), &stride);
    if (!scratch) return 1;
    int n_threads = 1;
#pragma omp parallel
    {
#pragma omp single
        n_threads = omp_get_num_threads();
        int32_t *local = (int32_t *)(scratch + stride * (size_t)omp_get_thread_num());
        memset(local, 0, (size_t)n * sizeof(int32_t));
#pragma omp for schedule(static)
        for (int64_t b = 0; b < rows; b++) {
            const float *row = x + b * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) local[j] += row[j] > 0.0f;
        }
    }
    sum_thread_counts(scratch, stride, n_threads, n, counts);
    return 0;
}

/* ---- threshold selections (JumpReLU, BatchTopK at evaluation) ---------------------------------------------------- */

/* counts[r] = #{j : x[r, j] > thr[j]} (NaN is not above). */
void aekit_count_above(const float *x, const float *thr, int64_t rows, int64_t n, int64_t *counts) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        int64_t count = 0;
#pragma omp simd reduction(+ : count)
        for (int64_t j = 0; j < n; j++) count += row[j] > thr[j];
        counts[r] = count;
    }
}

/* Each row's columns with x[r, j] > thr[j], in increasing order, into the first slots of a padded (rows, width)
 * selection (width ≥ every row's count): indices (int64, padding 0), values (the entries of x, padding 0) and
 * valid (1 for real slots). */
void aekit_select_above(const float *x, const float *thr, int64_t rows, int64_t n, int64_t width, int64_t *indices,
                        float *values, uint8_t *valid) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        int64_t *idx = indices + r * width;
        float *val = values + r * width;
        uint8_t *ok = valid + r * width;
        int64_t m = 0;
        for (int64_t j = 0; j < n; j++)
            if (row[j] > thr[j]) {
                idx[m] = j;
                val[m++] = row[j];
            }
        memset(ok, 1, (size_t)m);
        memset(ok + m, 0, (size_t)(width - m));
        memset(idx + m, 0, (size_t)(width - m) * sizeof(int64_t));
        memset(val + m, 0, (size_t)(width - m) * sizeof(float));
    }
}

/* counts[l] = #{e : idx[e] = l and values[e] > 0} over N entries of sparse codes (0 ≤ idx < n; NaN does not
 * count): per-thread int32 histograms summed in thread order (integers: exact for any thread count). Returns 1 when
 * an index is out of range, 2 when out of memory. */
int aekit_count_fired(const int64_t *idx, const float *values, int64_t N, int64_t n, int64_t *counts) {
    size_t stride;
    char *scratch = thread_scratch((size_t)n * sizeof(int32_t), &stride);
    if (!scratch) return 2;
    int n_threads = 1, bad = 0;
#pragma omp parallel reduction(| : bad)
    {
#pragma omp single
        n_threads = omp_get_num_threads();
        int32_t *local = (int32_t *)(scratch + stride * (size_t)omp_get_thread_num());
        memset(local, 0, (size_t)n * sizeof(int32_t));
#pragma omp for schedule(static)
        for (int64_t e = 0; e < N; e++) {
            if (!(values[e] > 0.0f)) continue;
            if (idx[e] < 0 || idx[e] >= n) {
                bad = 1;
                continue;
            }
            local[idx[e]]++;
        }
    }
    sum_thread_counts(scratch, stride, n_threads, n, counts);
    return bad;
}
