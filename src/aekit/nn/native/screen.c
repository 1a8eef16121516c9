/* ---- exact top-k of pre-activations, screened through a bfloat16 product ----------------------------------
 * The argument is in aekit/nn/screening.py. approx[b, i] is the product x̃_b · w̃_i of bfloat16-rounded rows,
 * accumulated in float32 and rounded to bfloat16 (a fast AMX GEMM). For every entry
 *     e[b, i] = a[b]·p[i] + c[b]·q[i] + rel·|approx[b, i]|
 * bounds its distance from the exact x_b · w_i, so with s = approx + bias the exact pre-activation lies in
 * [s − e, s + e] (the constants below add the float rounding of this arithmetic). With L the k-th largest
 * lower bound of the row, k entries are certainly ≥ L, so an entry whose upper bound is below L cannot be in
 * the top k. The rest (k and a few more) are recomputed exactly in float32 from x and W, and their top k kept.
 */

/* bfloat16 (round to nearest even, as the hardware converts) and back */
static inline uint16_t float_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    const uint32_t rounded = (v.u + 0x7FFFu + ((v.u >> 16) & 1u)) >> 16;
    return (uint16_t)((v.u & 0x7FFFFFFFu) > 0x7F800000u ? (v.u >> 16) | 0x0040u : rounded); /* NaN stays NaN */
}

static inline float bf16_to_float(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}

/* An upper bound of sqrt(ss) for a float sum of d squares: the sum's rounding (at most γ_d relative, all terms
 * non-negative) and the square root's are covered by the two factors. */
static inline float norm_upper(float ss, int64_t d) {
    return sqrtf(ss * (1.0f + (float)(d + 2) * 0x1p-23f)) * (1.0f + 0x1p-22f);
}

/* dst = bfloat16(src) row by row, and per row (each output may be NULL) upper bounds of ||dst_row||,
 * ||dst_row − src_row|| and ||src_row||. */
void aekit_bf16_rows(const float *src, int64_t rows, int64_t d, uint16_t *dst, float *norm_rounded,
                     float *norm_error, float *norm) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * d;
        uint16_t *h = dst + r * d;
        float s_rounded = 0.0f, s_error = 0.0f, s_src = 0.0f;
#pragma omp simd reduction(+ : s_rounded, s_error, s_src)
        for (int64_t t = 0; t < d; t++) {
            const uint16_t b = float_to_bf16(x[t]);
            const float back = bf16_to_float(b), err = back - x[t];
            h[t] = b;
            s_rounded += back * back;
            s_error += err * err;
            s_src += x[t] * x[t];
        }
        if (norm_rounded) norm_rounded[r] = norm_upper(s_rounded, d);
        if (norm_error) norm_error[r] = norm_upper(s_error, d);
        if (norm) norm[r] = norm_upper(s_src, d);
    }
}

#define SCREEN_INFLATE (1.0f + 0x1p-16f) /* the bound's own float rounding (a few ulps) */
#define SCREEN_SLACK_REL 0x1p-20f        /* rounding of s = approx + bias and of s ± e, relative to |s| */
#define SCREEN_SLACK_ABS 1e-30f          /* denormal inputs the product may flush to zero */

/* The bound for one row: upper[i] = s + e into `upper`, and the lower bounds s − e reduced to the maxima of G
 * strided groups (entry i in group i mod G; G a multiple of 16) in group_max. Returns nonzero when approx holds an
 * infinity or NaN. */
static int screen_bounds(const uint16_t *approx, const float *bias, const float *p, const float *q, float a, float c,
                         float rel, int64_t n, float *upper, float *group_max, int64_t G) {
    int bad = 0;
    int64_t i = 0, g = 0;
    for (int64_t j = 0; j < G; j++) group_max[j] = -INFINITY;
#ifdef __AVX512F__
    const __m512 va = _mm512_set1_ps(a), vc = _mm512_set1_ps(c), vrel = _mm512_set1_ps(rel);
    const __m512 inflate = _mm512_set1_ps(SCREEN_INFLATE), slack = _mm512_set1_ps(SCREEN_SLACK_REL);
    const __m512 tiny = _mm512_set1_ps(SCREEN_SLACK_ABS);
    const __m512i exponent = _mm512_set1_epi32(0x7F800000);
    __mmask16 nonfinite = 0;
    for (; i + 16 <= n; i += 16) {
        _mm_prefetch((const char *)(approx + i + 2048), _MM_HINT_T0); /* 4 KB ahead: the row comes from memory */
        const __m512i bits =
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(approx + i))), 16);
        const __m512 o = _mm512_castsi512_ps(bits);
        nonfinite |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, exponent), exponent);
        const __m512 s = bias ? _mm512_add_ps(o, _mm512_loadu_ps(bias + i)) : o;
        __m512 e = _mm512_fmadd_ps(va, _mm512_loadu_ps(p + i), _mm512_mul_ps(vc, _mm512_loadu_ps(q + i)));
        e = _mm512_add_ps(_mm512_fmadd_ps(vrel, _mm512_abs_ps(o), e), tiny);
        e = _mm512_fmadd_ps(e, inflate, _mm512_mul_ps(slack, _mm512_abs_ps(s)));
        _mm512_storeu_ps(upper + i, _mm512_add_ps(s, e));
        _mm512_storeu_ps(group_max + g, _mm512_max_ps(_mm512_loadu_ps(group_max + g), _mm512_sub_ps(s, e)));
        g = g + 16 == G ? 0 : g + 16;
    }
    bad = nonfinite != 0;
#endif
    for (; i < n; i++) {
        const float o = bf16_to_float(approx[i]);
        bad |= !isfinite(o);
        const float s = o + (bias ? bias[i] : 0.0f);
        const float e = (a * p[i] + c * q[i] + rel * fabsf(o) + SCREEN_SLACK_ABS) * SCREEN_INFLATE +
                        SCREEN_SLACK_REL * fabsf(s);
        upper[i] = s + e;
        const float lower = s - e;
        group_max[i % G] = lower > group_max[i % G] ? lower : group_max[i % G];
    }
    return bad;
}

/* Columns i with upper[i] ≥ cut into cols (room for cap + 16); their count, or −1 when more than cap. */
static int64_t screen_candidates(const float *upper, int64_t n, float cut, int32_t *cols, int64_t cap) {
    int64_t count = 0, i = 0;
#ifdef __AVX512F__
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 vcut = _mm512_set1_ps(cut);
    for (; i + 16 <= n; i += 16) {
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(upper + i), vcut, _CMP_GE_OQ);
        if (!m) continue;
        _mm512_storeu_si512(cols + count,
                            _mm512_maskz_compress_epi32(m, _mm512_add_epi32(lane, _mm512_set1_epi32((int)i))));
        count += __builtin_popcount(m);
        if (count > cap) return -1;
    }
#endif
    for (; i < n; i++)
        if (upper[i] >= cut) {
            if (count == cap) return -1;
            cols[count++] = (int32_t)i;
        }
    return count;
}

/* The k-th largest of v[0..n) (1 ≤ k ≤ n, no NaN). AVX-512: bisection on the sortable keys, counting with
 * vector compares; portable: quickselect through `ranked` (n slots). */
static float kth_largest(const float *v, int64_t n, int64_t k, Candidate *ranked) {
#ifdef __AVX512F__
    (void)ranked;
    uint32_t lo = 0xFFFFFFFFu, hi = 0; /* invariant: count(key ≥ lo) ≥ k, count(key > hi) < k */
    for (int64_t i = 0; i < n; i++) {
        const uint32_t key = float_key(v[i]);
        lo = key < lo ? key : lo;
        hi = key > hi ? key : hi;
    }
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2 + 1;
        if (count_at_least(v, n, _mm512_set1_epi32((int)mid)) >= k) lo = mid;
        else hi = mid - 1;
    }
    return key_to_float(lo);
#else
    for (int64_t i = 0; i < n; i++) {
        ranked[i].key = float_key(v[i]);
        ranked[i].index = i;
    }
    keep_largest(ranked, n, k);
    int64_t smallest = 0;
    for (int64_t i = 1; i < k; i++) smallest = ranked[i].key < ranked[smallest].key ? i : smallest;
    return v[ranked[smallest].index];
#endif
}

/* A row's survivors recomputed exactly: vals[j] = x_row · W[cols[j]] + bias[cols[j]] (srcs: count slots). */
static void rescore(const float *x_row, const float *W, const float *bias, const int32_t *cols, int64_t count,
                    int64_t d, const float **srcs, float *vals) {
    for (int64_t j = 0; j < count; j++) srcs[j] = W + (int64_t)cols[j] * d;
    dots_with_row(x_row, d, count, srcs, vals);
    if (bias)
        for (int64_t j = 0; j < count; j++) vals[j] += bias[cols[j]];
}

/* Per-thread scratch of the screening kernels: a row's upper bounds and group maxima, its survivors (columns,
 * exact values, row pointers) and the ranking slots. */
typedef struct {
    float *upper, *group_max, *vals;
    int32_t *cols;
    const float **srcs;
    Candidate *ranked;
} ScreenScratch;

/* Slot counts rounded up to 16 so that every array of the scratch starts 64-byte aligned. */
static inline int64_t pad16(int64_t count) { return (count + 15) / 16 * 16; }

static size_t screen_scratch_bytes(int64_t n, int64_t G, int64_t cap) {
    const int64_t slots = cap > G ? cap : G;
    return (size_t)(pad16(n) + pad16(G)) * sizeof(float) +
           (size_t)pad16(cap + 16) * (sizeof(int32_t) + sizeof(float)) + (size_t)pad16(cap) * sizeof(const float *) +
           (size_t)slots * sizeof(Candidate);
}

static ScreenScratch screen_scratch_at(char *base, int64_t n, int64_t G, int64_t cap) {
    ScreenScratch s;
    s.upper = (float *)base;
    s.group_max = s.upper + pad16(n);
    s.cols = (int32_t *)(s.group_max + pad16(G));
    s.vals = (float *)(s.cols + pad16(cap + 16));
    s.srcs = (const float **)(s.vals + pad16(cap + 16));
    s.ranked = (Candidate *)(s.srcs + pad16(cap));
    return s;
}

/* What a screen produces per row: with k > 0 the row's exact top k (idx, val; redo[b] = 1 leaves the row to the
 * caller), with k = 0 every entry whose exact value is ≥ cut (cols, vals: (rows, cap), count[b] of them; −1 leaves
 * the row to the caller). */
typedef struct {
    int64_t k;
    float cut;
    int64_t *idx;
    float *val;
    uint8_t *redo;
    int32_t *cols;
    float *vals;
    int64_t *count;
} ScreenOutput;

static void write_row_topk(const ScreenOutput *out, ScreenScratch *s, int64_t b, int64_t survivors) {
    const int64_t k = out->k;
    out->redo[b] = survivors < k;
    if (survivors < k) return;
    for (int64_t j = 0; j < survivors; j++) {
        s->ranked[j].key = float_key(s->vals[j]);
        s->ranked[j].index = j;
    }
    if (survivors > k) keep_largest(s->ranked, survivors, k);
    for (int64_t j = 0; j < k; j++) {
        out->idx[b * k + j] = s->cols[s->ranked[j].index];
        out->val[b * k + j] = s->vals[s->ranked[j].index];
    }
}

static void write_row_above(const ScreenOutput *out, const ScreenScratch *s, int64_t b, int64_t survivors,
                            int64_t cap) {
    int64_t kept = 0;
    for (int64_t j = 0; j < survivors; j++)
        if (s->vals[j] >= out->cut) {
            out->cols[b * cap + kept] = s->cols[j];
            out->vals[b * cap + kept++] = s->vals[j];
        }
    out->count[b] = survivors < 0 ? -1 : kept;
}

/* The driver of both screens: per row the bounds, the survivors (upper bound ≥ the row's cut: with k > 0 the k-th
 * largest of G group maxima of the lower bounds, since k groups hold a lower bound at least that large; with
 * k = 0 the given cut) and their exact values; a non-finite entry or more than cap survivors leaves the row to
 * the caller. Returns nonzero when a thread could not allocate its buffers. */
static int screen_rows(const uint16_t *approx, const float *bias, const float *x, const float *W, const float *a,
                       const float *c, const float *p, const float *q, float rel, int64_t rows, int64_t n, int64_t d,
                       int64_t cap, const ScreenOutput *out) {
    /* G groups (a multiple of 16, ≥ 4k): the cut is only a little below the k-th largest lower bound */
    const int64_t k = out->k, G = k ? ((4 * k > 256 ? 4 * k : 256) + 15) / 16 * 16 : 16;
    size_t stride;
    char *scratch = thread_scratch(screen_scratch_bytes(n, G, cap), &stride);
    if (!scratch) return 1;
#pragma omp parallel
    {
        ScreenScratch s = screen_scratch_at(scratch + stride * (size_t)omp_get_thread_num(), n, G, cap);
#pragma omp for schedule(dynamic, 16)
        for (int64_t b = 0; b < rows; b++) {
            int64_t survivors = -1;
            if (!screen_bounds(approx + b * n, bias, p, q, a[b], c[b], rel, n, s.upper, s.group_max, G)) {
                const float cut = k ? kth_largest(s.group_max, G, k, s.ranked) : out->cut;
                if (isfinite(cut)) survivors = screen_candidates(s.upper, n, cut, s.cols, cap);
                if (survivors < k) survivors = -1; /* a NaN bound */
                if (survivors >= 0) rescore(x + b * d, W, bias, s.cols, survivors, d, s.srcs, s.vals);
            }
            if (k) write_row_topk(out, &s, b, survivors);
            else write_row_above(out, &s, b, survivors, cap);
        }
    }
    free(scratch);
    return 0;
}

/* approx: (rows, n) bfloat16 bits; x: (rows, d) and W: (n, d) the exact float32 operands; bias: (n,) or NULL;
 * a, c: (rows,) and p, q: (n,) the bound's norms; rel: the relative bound of approx's own rounding.
 * idx, val: (rows, k), the exact top k of x·Wᵀ + bias per row (in no particular order). redo[b] = 1 marks a row
 * left for the caller: a non-finite entry, or more than cap candidates. Requires 1 ≤ k ≤ cap ≤ n < 2^31.
 * Returns nonzero when a thread could not allocate its buffers. */
int aekit_screened_topk(const uint16_t *approx, const float *bias, const float *x, const float *W, const float *a,
                        const float *c, const float *p, const float *q, float rel, int64_t rows, int64_t n, int64_t d,
                        int64_t k, int64_t cap, int64_t *idx, float *val, uint8_t *redo) {
    const ScreenOutput out = {.k = k, .idx = idx, .val = val, .redo = redo};
    return screen_rows(approx, bias, x, W, a, c, p, q, rel, rows, n, d, cap, &out);
}

/* ---- the same screen for a batch-wide top-k (BatchTopK) ------------------------------------------------------
 * First every row's G group maxima of its lower bounds (aekit_screen_group_maxima); the caller takes the
 * total-th largest of them all as the cut: `total` groups hold a lower bound at least that large, so the batch's
 * total-th largest pre-activation is ≥ cut. Then every entry whose exact value is ≥ cut (aekit_screened_above):
 * its upper bound is ≥ cut too, so it survives the screen and is recomputed. Those entries include the batch's
 * top `total`, which the caller picks from them.
 */

/* group_max: (rows, G), G a multiple of 16; bad[b] = 1 marks a row with a non-finite entry (its maxima are
 * -inf). Returns nonzero when a thread could not allocate its buffer. */
int aekit_screen_group_maxima(const uint16_t *approx, const float *bias, const float *a, const float *c,
                              const float *p, const float *q, float rel, int64_t rows, int64_t n, int64_t G,
                              float *group_max, uint8_t *bad) {
    size_t stride;
    char *scratch = thread_scratch((size_t)n * sizeof(float), &stride);
    if (!scratch) return 1;
#pragma omp parallel
    {
        float *upper = (float *)(scratch + stride * (size_t)omp_get_thread_num());
#pragma omp for schedule(static)
        for (int64_t b = 0; b < rows; b++) {
            float *gm = group_max + b * G;
            bad[b] = (uint8_t)screen_bounds(approx + b * n, bias, p, q, a[b], c[b], rel, n, upper, gm, G);
            if (bad[b])
                for (int64_t j = 0; j < G; j++) gm[j] = -INFINITY;
        }
    }
    free(scratch);
    return 0;
}

/* cols, vals: (rows, cap): each row's entries whose exact value is ≥ cut, count[b] of them, or count[b] = −1 for
 * a row left to the caller (more than cap survivors, or a non-finite entry). Same operands as
 * aekit_screened_topk. Returns nonzero when a thread could not allocate its buffers. */
int aekit_screened_above(const uint16_t *approx, const float *bias, const float *x, const float *W, const float *a,
                         const float *c, const float *p, const float *q, float rel, int64_t rows, int64_t n,
                         int64_t d, float cut, int64_t cap, int32_t *cols, float *vals, int64_t *count) {
    const ScreenOutput out = {.k = 0, .cut = cut, .cols = cols, .vals = vals, .count = count};
    return screen_rows(approx, bias, x, W, a, c, p, q, rel, rows, n, d, cap, &out);
}

/* The k-th largest of v[0..n) (1 ≤ k ≤ n, no NaN), for callers outside a parallel region. Returns NaN when the
 * portable path cannot allocate its ranking slots. */
float aekit_kth_largest(const float *v, int64_t n, int64_t k) {
#ifdef __AVX512F__
    return kth_largest(v, n, k, NULL);
#else
    Candidate *ranked = malloc((size_t)n * sizeof(Candidate));
    if (!ranked) return NAN;
    const float kth = kth_largest(v, n, k, ranked);
    free(ranked);
    return kth;
#endif
}

/* The `total` largest of every row's kept entries (cols, vals: (rows, cap), count[b] of them in row b), in row
 * order: rows_out, cols_out, vals_out (total each). Among entries equal to the total-th largest value the
 * earliest are taken. Returns 0, 1 when fewer than `total` entries are kept, 2 when out of memory. */
int aekit_batch_select(const int32_t *cols, const float *vals, const int64_t *count, int64_t rows, int64_t cap,
                       int64_t total, int64_t *rows_out, int64_t *cols_out, float *vals_out) {
    int64_t n = 0;
    for (int64_t b = 0; b < rows; b++) n += count[b];
    if (n < total || total < 1) return 1;
    float *all = malloc((size_t)n * sizeof(float));
    if (!all) return 2;
    for (int64_t b = 0, e = 0; b < rows; b++) {
        memcpy(all + e, vals + b * cap, (size_t)count[b] * sizeof(float));
        e += count[b];
    }
    const float kth = aekit_kth_largest(all, n, total);
    int64_t above = 0;
    for (int64_t e = 0; e < n; e++) above += all[e] > kth;
    free(all);
    if (kth != kth) return 2;
    int64_t ties = total - above, out = 0;
    for (int64_t b = 0; b < rows; b++)
        for (int64_t j = 0; j < count[b]; j++) {
            const float v = vals[b * cap + j];
            if (v > kth || (v == kth && ties-- > 0)) {
                rows_out[out] = b;
                cols_out[out] = cols[b * cap + j];
                vals_out[out++] = v;
            }
        }
    return 0;
}
