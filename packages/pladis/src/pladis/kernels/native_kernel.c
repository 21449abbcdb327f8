/* PLADIS weights (Eq. 15) on the CPU in one fused sweep per block of 16 queries.
 *
 * Input: scores S = QKᵀ/√d in keys-major layout, float32 [groups][n_key][n_query] (what K·Qᵀ gives),
 * an optional additive bias in the same layout. Output (may alias the input): the mixed weights
 * M = (1−λ)·softmax(S + b) + λ·α-entmax(z), same layout, ready for Mᵀ·V, with the sparse logits
 * z = (S + b)/T for T ≤ 1 and S/T + b for T > 1 (a −10000 mask removes a key at any temperature).
 *
 * Each lane of a 16-float vector (GCC/Clang vector extensions: AVX-512, AVX2, SSE or NEON) holds one
 * query row, so a row's sums are plain vector adds (no horizontal reductions, no tails at 77 keys) and
 * a block's scores stay in L1 for every solver pass. The solver is the one of pladis/alpha_entmax.py:
 * the start bound of threshold_start, the passes of _threshold_pass (Michelot for α = 2, the closed
 * form on the support for α = 1.5, Newton on φ then on f otherwise), then passes until Σp = 1 within
 * 4e-7/(α−1) (converged) or τ stops moving. Row sums go through double every 8 keys, so the check sees
 * Σp to fp32 resolution. Optionally also writes each row's log-sum-exp of S + b, float32
 * [groups][n_query] (−inf for a fully masked row, NaN for a row with a NaN score). Built by
 * pladis/kernels/native.py.
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
#define FOLD 8
#define TINY 1.17549435e-38f
#define RESIDUAL_TOL 4e-7f
#define MAX_ITER 64
#define PHI_PASSES 2
#define RCBRT_MAGIC 0x54A21D2A

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef float vh __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(64)));
typedef struct { vd lo, hi; } vdd; /* 16 lanes in double */

enum { QUARTERS = 0, THIRDS = 1, GENERIC = 2 };
typedef struct { int mode, whole, part; float frac; } power_t; /* y^(whole + part/4 | part/3), or y^frac */

typedef struct {
    const float *scores, *bias;
    float *out, *lse;  /* lse: NULL, or the rows' log-sum-exps of S + b */
    int64_t n_key, n_query, blocks_per_group;
    float alpha, alpha_minus_one, k, scale, inv_temp;  /* α − 1 and k = 1/(α − 1) rounded from double */
    power_t pass_power;  /* y^(k − 1); y^k is y^(k − 1)·y */
} job_t;

typedef struct { vf *x, *ex, *z, *w; } scratch_t; /* n_key vectors each */

static inline vf splat(float v) { return (vf){0} + v; }
static inline vf pick(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }
static inline vf vmax(vf a, vf b) { return pick(a > b, a, b); }
static inline vf vsqrt(vf v) {
    vf r;
    for (int l = 0; l < LANES; l++) r[l] = sqrtf(v[l]);
    return r;
}
#if defined(__clang__) || __GNUC__ >= 12
static inline vh low_half(vf v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
static inline vh high_half(vf v) { return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15); }
static inline vf join(vh lo, vh hi) {
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
#else /* GCC < 12 has no __builtin_shufflevector: halves through a union (slower) */
typedef union { vf whole; vh half[2]; } halves_t;
static inline vh low_half(vf v) { return ((halves_t){.whole = v}).half[0]; }
static inline vh high_half(vf v) { return ((halves_t){.whole = v}).half[1]; }
static inline vf join(vh lo, vh hi) { return ((halves_t){.half = {lo, hi}}).whole; }
#endif
static inline void fold(vdd *acc, vf v) {
    acc->lo += __builtin_convertvector(low_half(v), vd);
    acc->hi += __builtin_convertvector(high_half(v), vd);
}
static inline vf unfold(vdd a) { return join(__builtin_convertvector(a.lo, vh), __builtin_convertvector(a.hi, vh)); }

/* 2^x; results below 2^-126 flush to 0 (round via 1.5·2^23, degree-7 Taylor on [-1/2, 1/2]: ≤ 1 ulp). */
static inline vf exp2_approx(vf x) {
    x = vmax(vmax(x, splat(-127.0f)), -vmax(-x, splat(-127.0f)));
    vf n = (x + 12582912.0f) - 12582912.0f, f = (x - n) * 0.69314718f;
    vf p = 1.0f + f * (1.0f + f * (0.5f + f * (1.6666667e-1f + f * (4.1666668e-2f
           + f * (8.3333338e-3f + f * (1.3888889e-3f + f * 1.9841270e-4f))))));
    return p * (vf)((__builtin_convertvector(n, vi) + 127) << 23);
}

/* log2(y) for normal y > 0 (atanh series on a mantissa in [√½, √2): ≤ 1 ulp). */
static inline vf log2_approx(vf y) {
    vi i = (vi)y;
    vf e = __builtin_convertvector(((i >> 23) & 0xff) - 127, vf);
    vf m = (vf)((i & 0x7fffff) | 0x3f800000);
    vi big = m > 1.41421356f;
    m = pick(big, 0.5f * m, m);
    e = pick(big, e + 1.0f, e);
    vf r = (m - 1.0f) / (m + 1.0f), r2 = r * r;
    return e + r * 2.8853901f * (1.0f + r2 * (0.33333334f + r2 * (0.2f + r2 * (0.14285715f + r2 * 0.11111111f))));
}

/* y^(1/3), y ≥ 0 (alpha_entmax._cube_root: bit seed, third-order step, Newton on the root; ≤ 1e-7). */
static inline vf cube_root(vf y) {
    vf normal = vmax(y, splat(TINY));
    vf third = __builtin_convertvector((vi)normal, vf) * (1.0f / 3.0f);
    vf r = (vf)(RCBRT_MAGIC - __builtin_convertvector(third, vi));
    vf e = 1.0f - normal * r * r * r;
    r = r * (1.0f + e * (1.0f / 3.0f + e * (2.0f / 9.0f + e * (14.0f / 81.0f))));
    vf r2 = r * r, c = y * r2;
    return c + (y - c * c * c) * (r2 * (1.0f / 3.0f));
}

/* y^e for y ≥ 0 (0 stays exactly 0 for e > 0); ``mode`` is a constant after inlining. */
static inline __attribute__((always_inline)) vf power(vf y, const int mode, power_t p) {
    vf frac;
    if (mode == QUARTERS) {
        vf root = vsqrt(y), fourth = vsqrt(root);
        frac = p.part == 0 ? splat(1.0f) : p.part == 1 ? fourth : p.part == 2 ? root : root * fourth;
    } else if (mode == THIRDS) {
        vf root = cube_root(y);
        frac = p.part == 1 ? root : root * root;
    } else {
        return pick(y > 0.0f, exp2_approx(p.frac * log2_approx(vmax(y, splat(TINY)))), splat(0.0f));
    }
    vf one = splat(1.0f), y2 = y * y;
    return (p.whole & 1 ? y : one) * (p.whole & 2 ? y2 : one) * (p.whole & 4 ? y2 * y2 : one) * frac;
}

static inline vf row_power(vf v, float e) { return exp2_approx(e * log2_approx(v)); } /* v > 0 */

/* One sweep at t = τ/c (a pass of alpha_entmax._threshold_pass): p = [c·(z − t)]₊^k into w and Σp,
 * returned. Lanes whose Σp is 1 within ``tol`` (alpha_entmax.converged) join ``done`` and keep t, p;
 * the others step, and join ``done`` if t does not move (a fixed point: τ at fp32 resolution). */
static inline __attribute__((always_inline)) vf solver_pass(
    const job_t *job, const vf *z, vf *w, int64_t nk, float c, const int mode, int phi, float tol,
    vf *t, vf *lo, vi *done) {
    const float alpha = job->alpha;
    vdd a1 = {{0}, {0}}, a2 = {{0}, {0}};
    vf count = splat(0.0f), next, total;
    for (int64_t j0 = 0; j0 < nk; j0 += FOLD) {
        vf p1 = splat(0.0f), p2 = splat(0.0f);
        int64_t j1 = j0 + FOLD < nk ? j0 + FOLD : nk;
        if (alpha == 2.0f || alpha == 1.5f) {
            for (int64_t j = j0; j < j1; j++) {
                vf u = z[j] - *t, y = vmax(u, splat(0.0f)), cy = y * c;
                w[j] = alpha == 2.0f ? cy : cy * cy;
                p1 += y;
                if (alpha == 1.5f) p2 += y * y;  /* α = 2 needs Σy and the count only */
                count += (vf)((u > 0.0f) & (vi)splat(1.0f));
            }
        } else {
            for (int64_t j = j0; j < j1; j++) {
                vf y = vmax((z[j] - *t) * c, splat(0.0f)), v = power(y, mode, job->pass_power);
                w[j] = v * y;
                p1 += v;
                p2 += w[j];
            }
        }
        fold(&a1, p1);
        fold(&a2, p2);
    }
    vf s1 = unfold(a1), s2 = unfold(a2);
    if (alpha == 2.0f) {
        total = s1 * c;
        next = *t + (total - 1.0f) / (count * c);
    } else if (alpha == 1.5f) {
        s1 *= c;
        vf norm = vsqrt(s2) * c, f = norm * norm - 1.0f, disc = s1 * s1 - count * f;
        total = s2 * (c * c);
        vf closed = *t + f / ((s1 + vsqrt(vmax(disc, splat(0.0f)))) * c);
        vf low = vmax(*lo, *t + (f + 1.0f - norm) / (s1 * c));
        vi below = f >= 0.0f;
        next = pick(below, pick(disc >= 0.0f, closed, low), vmax(low, closed));
        *lo = pick(*done, *lo, pick(below, low, next));
    } else {
        vf g = vmax(s1, splat(TINY));
        total = s2;
        vf step = phi ? (s2 - row_power(vmax(s2, splat(TINY)), 1.0f - job->alpha_minus_one)) / g
                      : (s2 - 1.0f) / (job->k * g);
        next = *t + step / c;
    }
    vf residual = total - 1.0f;
    *done |= (residual <= tol) & (residual >= -tol);
    next = pick(*done, *t, next);
    *done |= next == *t;
    *t = next;
    return total;
}

/* Eq. 24 before normalising, p = [c·(z − t)]₊^k into w; returns the row sums. */
static inline __attribute__((always_inline)) vf support_weights(
    const job_t *job, const vf *z, vf *w, int64_t nk, float c, const int mode, vf t) {
    const float alpha = job->alpha;
    vdd total = {{0}, {0}};
    for (int64_t j0 = 0; j0 < nk; j0 += FOLD) {
        vf partial = splat(0.0f);
        int64_t j1 = j0 + FOLD < nk ? j0 + FOLD : nk;
        for (int64_t j = j0; j < j1; j++) {
            vf y = vmax((z[j] - t) * c, splat(0.0f));
            w[j] = alpha == 2.0f ? y : alpha == 1.5f ? y * y : power(y, mode, job->pass_power) * y;
            partial += w[j];
        }
        fold(&total, partial);
    }
    return unfold(total);
}

static inline vf load_lanes(const float *src, const float *bias, int lanes) {
    vf v = splat(0.0f);  /* missing lanes (the last block of a group) are uniform rows, never written */
    if (lanes == LANES) {
        memcpy(&v, src, sizeof v);
        if (bias) {
            vf b;
            memcpy(&b, bias, sizeof b);
            v += b;
        }
    } else {
        for (int l = 0; l < lanes; l++) v[l] = src[l] + (bias ? bias[l] : 0.0f);
    }
    return v;
}

static inline void store_lanes(float *dst, vf v, int lanes) {
    if (lanes == LANES) memcpy(dst, &v, sizeof v);
    else for (int l = 0; l < lanes; l++) dst[l] = v[l];
}

/* Sum over the block's keys (float partials of FOLD keys, folded in double). */
static inline vf key_sum(const vf *v, int64_t nk) {
    vdd acc = {{0}, {0}};
    for (int64_t j0 = 0; j0 < nk; j0 += FOLD) {
        vf partial = splat(0.0f);
        for (int64_t j = j0; j < (j0 + FOLD < nk ? j0 + FOLD : nk); j++) partial += v[j];
        fold(&acc, partial);
    }
    return unfold(acc);
}

static inline __attribute__((always_inline)) void block(
    const job_t *job, const scratch_t *s, int64_t group, int64_t q0, const int mode) {
    const int64_t nk = job->n_key, nq = job->n_query;
    const int lanes = nq - q0 < LANES ? (int)(nq - q0) : LANES;
    const float *src = job->scores + group * nk * nq + q0;
    const float *bias = job->bias ? job->bias + group * nk * nq + q0 : NULL;
    float *out = job->out + group * nk * nq + q0;
    const float scale = job->scale, inv_temp = job->inv_temp;
    vf m = splat(-INFINITY), zero = splat(0.0f);
    vi bad = (vi){0};  /* a NaN (or +inf) score: the row's weights are NaN, as in eager, and not solved */
    for (int64_t j = 0; j < nk; j++) {  /* dense logits S + b and their row max */
        s->x[j] = load_lanes(src + j * nq, bias ? bias + j * nq : NULL, lanes);
        bad |= (s->x[j] != s->x[j]) | (s->x[j] == INFINITY);
        m = vmax(s->x[j], m);
    }
    vi dead = (m == -INFINITY) & ~bad;  /* a fully masked row: solved as a uniform one, zeroed at the end */
    m = pick(dead, zero, m);
    for (int64_t j = 0; j < nk; j++) {  /* x = logits − max; softmax numerators exp(x) */
        s->x[j] = pick(dead, zero, s->x[j] - m);
        bad |= s->x[j] != s->x[j];
        s->ex[j] = exp2_approx(s->x[j] * 1.44269504f);
    }
    vf exp_total = key_sum(s->ex, nk), dense_coef = (1.0f - scale) / exp_total, sparse_coef = zero;
    if (job->lse != NULL) {
        float *row = job->lse + group * nq + q0;
        for (int l = 0; l < lanes; l++) row[l] = bad[l] ? NAN : dead[l] ? -INFINITY : m[l] + logf(exp_total[l]);
    }
    const vf *z = s->x;  /* sparse logits: x itself ((S + b)/T) unless a bias meets a temperature > 1 */
    float c = job->alpha_minus_one * inv_temp;
    if (scale != 0.0f) {
        if (bias != NULL && inv_temp < 1.0f) {
            vf zm = splat(-INFINITY);
            for (int64_t j = 0; j < nk; j++) {
                s->z[j] = load_lanes(src + j * nq, NULL, lanes) * inv_temp + load_lanes(bias + j * nq, NULL, lanes);
                zm = vmax(s->z[j], zm);
            }
            for (int64_t j = 0; j < nk; j++) {
                s->z[j] = pick(dead, zero, s->z[j] - pick(dead, zero, zm));
                bad |= s->z[j] != s->z[j];  /* S/T can overflow where S + b does not */
                s->w[j] = exp2_approx(s->z[j] * 1.44269504f);
            }
            z = s->z;
            c = job->alpha_minus_one;
        }
        const vf *ez = z == s->x ? s->ex : s->w;  /* exp(z) */
        /* start (threshold_start): max(−1/c, Jensen mean − n^{1−α}/c, the exp(4z)-weighted bound) */
        vf t = vmax(key_sum(z, nk) / (float)nk - powf((float)nk, -job->alpha_minus_one) / c, splat(-1.0f / c)), lo;
        vdd wsum = {{0}, {0}}, wz = {{0}, {0}};
        for (int64_t j0 = 0; j0 < nk; j0 += FOLD) {
            vf p1 = zero, p2 = zero;
            for (int64_t j = j0; j < (j0 + FOLD < nk ? j0 + FOLD : nk); j++) {
                vf w = ez[j] * ez[j];
                w *= w;
                p1 += w;
                p2 += w * vmax(z[j], splat(-1e30f));
            }
            fold(&wsum, p1);
            fold(&wz, p2);
        }
        vf start_total = unfold(wsum);
        t = vmax(t, unfold(wz) / start_total - row_power(start_total, -job->alpha_minus_one) / c);
        lo = t;
        vi done = bad;
        const float tol = RESIDUAL_TOL / job->alpha_minus_one;
        int all = 0;
        vf total;
        for (int pass = 0; !all && pass <= MAX_ITER + nk; pass++) {
            total = solver_pass(job, z, s->w, nk, c, mode, pass < PHI_PASSES, tol, &t, &lo, &done);
            all = 1;
            for (int l = 0; l < LANES; l++) all &= done[l] != 0;
        }
        if (!all)  /* rows that never converged: their weights at their last t */
            total = support_weights(job, z, s->w, nk, c, mode, t);
        sparse_coef = scale / vmax(total, splat(TINY));
    }
    for (int64_t j = 0; j < nk; j++) {
        vf weights = s->ex[j] * dense_coef + (scale != 0.0f ? s->w[j] * sparse_coef : zero);
        store_lanes(out + j * nq, pick(bad, splat(NAN), pick(dead, zero, weights)), lanes);
    }
}

static void block_quarters(const job_t *j, const scratch_t *s, int64_t g, int64_t q) { block(j, s, g, q, QUARTERS); }
static void block_thirds(const job_t *j, const scratch_t *s, int64_t g, int64_t q) { block(j, s, g, q, THIRDS); }
static void block_generic(const job_t *j, const scratch_t *s, int64_t g, int64_t q) { block(j, s, g, q, GENERIC); }

/* Blocks [begin, end) of the job; nonzero when the scratch memory could not be had. */
static int run_blocks(const job_t *job, int64_t begin, int64_t end) {
    size_t n = (size_t)(job->n_key > 0 ? job->n_key : 1);
    vf *buffer = aligned_alloc(64, sizeof(vf) * 4 * n);
    if (buffer == NULL) return 1;
    scratch_t s = {buffer, buffer + n, buffer + 2 * n, buffer + 3 * n};
    int mode = job->pass_power.mode;
    for (int64_t b = begin; b < end; b++) {
        int64_t group = b / job->blocks_per_group, q0 = (b % job->blocks_per_group) * LANES;
        if (mode == QUARTERS) block_quarters(job, &s, group, q0);
        else if (mode == THIRDS) block_thirds(job, &s, group, q0);
        else block_generic(job, &s, group, q0);
    }
    free(buffer);
    return 0;
}

/* Returns 0, or nonzero when scratch memory could not be had (the caller then raises). The blocks are
 * split over ``threads`` OpenMP threads: torch's own pool, as its libgomp is the one already loaded. */
int pladis_weights(const float *scores, const float *bias, float *out, float *lse, int64_t groups, int64_t n_key,
                   int64_t n_query, float alpha, float alpha_minus_one, float k, float scale, float inv_temp,
                   int pass_mode, int pass_whole, int pass_part, float pass_frac, int threads) {
    job_t job = {scores, bias, out, lse, n_key, n_query, (n_query + LANES - 1) / LANES,
                 alpha, alpha_minus_one, k, scale, inv_temp,
                 {pass_mode, pass_whole, pass_part, pass_frac}};
    int64_t blocks = groups * job.blocks_per_group;
    if (threads > blocks) threads = (int)blocks;
    if (threads < 1) threads = 1;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        int id = 0, count = 1;
#ifdef _OPENMP
        id = omp_get_thread_num();
        count = omp_get_num_threads();
#endif
        failed |= run_blocks(&job, blocks * id / count, blocks * (id + 1) / count);
    }
    return failed;
}
