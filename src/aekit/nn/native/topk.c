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

/* vals[i..i+16) with the lanes past n zeroed and never read (callers' arrays need no slack at the end) */
static inline __m512 load_live(const float *vals, int64_t i, int64_t n) {
    return _mm512_maskz_loadu_ps(live_lanes(n - i), vals + i);
}

static inline int64_t count_at_least(const float *vals, int64_t n, __m512i key) {
    int64_t count = 0;
    for (int64_t i = 0; i < n; i += 16)
        count += __builtin_popcount(
            _mm512_mask_cmp_epu32_mask(live_lanes(n - i), sortable_keys(load_live(vals, i, n)), key, _MM_CMPINT_NLT));
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
        __m512i keys = sortable_keys(load_live(vals, i, n));
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
            const __mmask16 live = live_lanes(n - i);
            __m512 v = load_live(vals, i, n);
            __m512i keys = sortable_keys(v);
            __mmask16 m = pass == 0 && exact ? _mm512_mask_cmp_epu32_mask(live, keys, lo_key, _MM_CMPINT_NLE)
                          : pass == 0        ? _mm512_mask_cmp_epu32_mask(live, keys, lo_key, _MM_CMPINT_NLT)
                                             : _mm512_mask_cmp_epu32_mask(live, keys, lo_key, _MM_CMPINT_EQ);
            _mm512_storeu_ps(tmp_vals + out, _mm512_maskz_compress_ps(m, v));
            const __m512i c = _mm512_maskz_loadu_epi32(live, cols + i);
            _mm512_storeu_si512(tmp_cols + out, _mm512_maskz_compress_epi32(m, c));
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
