/* Fused one-layer super-resolution kernel: conv (1 -> F*s*s*C channels), PixelShuffle and the
 * per-pixel reduction (max / softmax-weighted sum) computed tile by tile, so the F*s*s*C channel
 * tensor never leaves L1 (the PyTorch reference writes and re-reads it through memory).
 *
 * Two entry points. edgesr_plane: one plane per image, (N, H, W) float32/uint8/uint16 in, (N, sH,
 * sW) out, rows may be strided (video planes are read and written in place). edgesr_color: an
 * interleaved gray/RGB/RGBA image (uint8/uint16) in and out, in one pass over strips of LR rows:
 * planes mixed from the input channels (Y', Cb, Cr, alpha), each filtered by the model or by the
 * separable bicubic (or taken from a model output computed elsewhere), mixed back to RGB,
 * rounded half to even, clamped and interleaved into the output. Outside the image the filters
 * read zeros (the model's own padding) or the nearest edge pixel (replicate border).
 * Weights (Cout, KH, KW) float32 in the model's channel order: channel (k*C + c)*s*s + r*s + q is
 * kind k (value, query, key), template c, output phase (r, q). Zero padding pad_top/pad_left
 * before the image, KH-1-pad_top / KW-1-pad_left after it (the model's conv padding).
 *
 * Vectors are GCC/Clang vector extensions of VW floats (set by the build: 16 with AVX-512, 8 with
 * AVX2, 4 otherwise), so the same source compiles everywhere and -march=native picks the ISA.
 * Work is split in strips of LR rows handed out through an atomic counter to the calling thread
 * and a small persistent pthread pool.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* Vector width and register blocking from the target ISA: CB * PV accumulators must fit the
 * register file (32 vectors with AVX-512 or NEON, 16 with AVX2/SSE). */
#ifndef VW
#if defined(__AVX512F__)
#define VW 16
#elif defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif
#endif
#ifndef PV
#define PV 2 /* pixel vectors per tile */
#endif
#ifndef CB
#if defined(__AVX512F__) || defined(__aarch64__)
#define CB 12 /* output channels per register block */
#else
#define CB 6
#endif
#endif
#define TW (PV * VW) /* LR pixels per tile */
/* X(k) for every register-block size k up to CB: the case labels of each conv dispatch. */
#if CB >= 12
#define EACH_BLOCK_SIZE(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12)
#elif CB >= 8
#define EACH_BLOCK_SIZE(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8)
#elif CB >= 6
#define EACH_BLOCK_SIZE(X) X(1) X(2) X(3) X(4) X(5) X(6)
#else
#define EACH_BLOCK_SIZE(X) X(1) X(2) X(3) X(4)
#endif
#define SH 16         /* LR rows per strip (unit of work for a thread) */

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef uint8_t vu8 __attribute__((vector_size(VW)));
typedef uint8_t vu8u __attribute__((vector_size(VW), aligned(1), may_alias));
typedef uint16_t vu16 __attribute__((vector_size(VW * 2)));
typedef uint16_t vu16u __attribute__((vector_size(VW * 2), aligned(1), may_alias));
typedef uint8_t vb4 __attribute__((vector_size(4 * VW)));   /* 4 channels of VW uint8 pixels */
typedef uint16_t vh4 __attribute__((vector_size(8 * VW)));  /* 4 channels of VW uint16 pixels */

static inline vf loadu(const float *p) { return *(const vfu *)p; }
static inline void storeu(float *p, vf v) { *(vfu *)p = v; }
static inline vf splat(float x) {
#if defined(__AVX512F__) && VW == 16
  return (vf)_mm512_set1_ps(x);
#elif defined(__AVX__) && VW == 8
  return (vf)_mm256_set1_ps(x);
#else
  return x - (vf){0}; /* x - (+0) == x for every x, so this folds to a broadcast */
#endif
}

static inline vf vmax(vf a, vf b) {
#if defined(__AVX512F__) && VW == 16
  return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX__) && VW == 8
  return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#elif defined(__SSE__) && VW == 4
  return (vf)_mm_max_ps((__m128)a, (__m128)b);
#else
  vi m = a > b;
  return (vf)(((vi)a & m) | ((vi)b & ~m));
#endif
}

static inline vf vmin(vf a, vf b) {
#if defined(__AVX512F__) && VW == 16
  return (vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif defined(__AVX__) && VW == 8
  return (vf)_mm256_min_ps((__m256)a, (__m256)b);
#elif defined(__SSE__) && VW == 4
  return (vf)_mm_min_ps((__m128)a, (__m128)b);
#else
  vi m = a < b;
  return (vf)(((vi)a & m) | ((vi)b & ~m));
#endif
}

/* Round to nearest even (like numpy.rint) and convert to int32. */
static inline vi vrint(vf x) {
#if defined(__AVX512F__) && VW == 16
  return (vi)_mm512_cvtps_epi32((__m512)x);
#elif defined(__AVX__) && VW == 8
  return (vi)_mm256_cvtps_epi32((__m256)x);
#elif defined(__SSE2__) && VW == 4
  return (vi)_mm_cvtps_epi32((__m128)x);
#else
  return __builtin_convertvector(x + 0.5f, vi); /* only used on values >= 0 */
#endif
}

/* exp(x) for x <= 0 (softmax after subtracting the max). AVX-512: 2^n * 2^f with n = round(x
 * log2 e), f in [-1/2, 1/2] through a degree-6 fit of 2^f (relative error 1e-7, fitted in
 * float32 by Lawson's iteration) and vscalefps for 2^n: 11 instructions instead of 17. The
 * softmax is ~20% of eSR-TM's time: 640x480 luma, 2 threads, both builds in one process,
 * eSR-TM_s2_K7_C16 12.75 -> 12.20 ms, eSR-TR_s2_K7_C16 18.14 -> 17.53 ms (medians of 40).
 * Elsewhere: the Cephes expf polynomial, ~1 ulp. */
static inline vf vexp_nonpos(vf x) {
  x = vmax(x, splat(-87.0f));
#if defined(__AVX512F__) && VW == 16
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps((__m512)x, log2e),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf f = (vf)_mm512_fmsub_ps((__m512)x, log2e, n);
  vf q = splat(1.5353361959569156e-4f);
  q = q * f + 1.3398875016719103e-3f;
  q = q * f + 9.6184369176626205e-3f;
  q = q * f + 5.5503323674201965e-2f;
  q = q * f + 2.4022647738456726e-1f;
  q = q * f + 6.9314718246459961e-1f;
  q = q * f + 1.0f;
  return (vf)_mm512_scalef_ps((__m512)q, n);
#else
  vf fx = x * 1.44269504088896341f;
  vi n = __builtin_convertvector(fx - 0.5f, vi); /* fx <= 0: truncation rounds to nearest */
  vf nf = __builtin_convertvector(n, vf);
  vf r = x - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  vf z = r * r;
  vf p = splat(1.9875691500E-4f);
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * z + r + 1.0f;
  vi bits = (n + 127) << 23;
  return p * (vf)bits;
#endif
}

/* Element types of image buffers. */
enum { T_F32 = 0, T_U8 = 1, T_U16 = 2 };

static inline size_t type_size(int type) { return type == T_F32 ? 4 : (type == T_U8 ? 1 : 2); }

/* Prefetch bytes at p into the caches, for reading or (write 1) writing. The input's next row
 * and the output's next row, requested while the current one is processed: the loads of the
 * (otherwise uncached) input measured 65% of read_rows' time, and prefetching them made the RGB
 * calls 8-17% faster. */
static inline void prefetch_bytes(const void *p, size_t bytes, const int write) {
  for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)p + b, write, 3);
}

/* An image buffer: element type, elements between pixels (channels of an interleaved image),
 * between rows and between images. Strides let video planes (padded rows) and interleaved RGB(A)
 * be read and written in place, with no copies. */
typedef struct {
  void *ptr;
  int type, pixel;
  long row, plane;
} buf_t;

/* Where phase q of a 4-tap separable filter starts in its 5-tap window (bicubic at s = 2, 3, 4:
 * the first half of the phases at 0, the rest at 1). A constant, so that the window stays in
 * registers (a run-time start put it on the stack: measured 1.1-1.3x slower). */
#define TAPS4_SHIFT(q, s) ((q) >= (s) / 2)

/* One filter: a one-layer model (weight != NULL) or a separable one (vert/horz). */
typedef struct {
  const float *weight;      /* phase-major: ((r*s + q) * F + k) * C + c rows of KH*KW taps */
  const float *vert, *horz; /* separable: (s, kh) and (s, kw) 1-D phase filters */
  int kh, kw, pad_top, pad_left;
  int c, f, mode;
  int group_rows;           /* output row phases whose channels are computed per tile together */
  int ldp;                  /* padded strip row length */
  int *taps;                /* offsets of the KH*KW taps in the padded strip */
  int vlo[4], vhi[4], hlo[4], hhi[4]; /* separable: the non-zero taps of each phase filter */
  int taps4;                /* separable, every phase filter fits 4 taps starting at vlo[0] +
                               TAPS4_SHIFT (hlo alike): one 5-tap window serves all phases (bicubic) */
  /* Reduced precision (see pack_strip): P_F32 or the packed conv's weights and grid. */
  int prec, ngroups;        /* precision; packed tap groups per channel */
  int *gtaps;               /* byte offsets of the groups in the packed strip */
  void *qweight;            /* (channels, ngroups) bf16 pairs / int8 quads / fp16 taps */
  float *qscale, *qsum;     /* per channel: weight scale, sum of the (rounded) weights */
  float g0, gs;             /* input grid: packed value = (v - g0) / gs */
} filt_t;

/* Output map of a filter strip: o*scale + offset, clamped to lo..hi for integer outputs. */
typedef struct {
  float scale, offset, lo, hi;
} omap_t;

#define MAXP 4 /* planes and output channels of the colour pipeline */

typedef struct {
  buf_t in, out;
  int n, h, w, s;
  int border;               /* 0: zeros outside the image (the model's padding); 1: replicate */
  filt_t model, chroma;     /* chroma: the separable bicubic of colour planes (colour jobs) */
  float in_coef, in_offset; /* plane jobs: the model sees x*in_coef + in_offset */
  omap_t omap;              /* plane jobs: output map */
  /* Colour jobs: plane p = sum_k coef[p][k] in[k] + offset[p], filtered by the model (kind 0),
   * the chroma bicubic (1) or taken from pre (2, a model output computed elsewhere); output
   * channel k = round(clamp(ooff[k] + sum_p mat[k][p] t[p], 0, peak)) with t[p] the filtered
   * plane, clamped to 0..1 for model planes (kinds 0 and 2). */
  int color, planes, outs, kind[MAXP];
  float coef[MAXP][MAXP], offset[MAXP], mat[MAXP][MAXP], ooff[MAXP], peak;
  const float *pre;
  int npre;
  int sep_color;            /* every plane through one 4-tap separable filter: sep_color */
  int strips;               /* strips per image */
  vi zip_lo, zip_hi;        /* shuffle masks interleaving two vectors */
  vi mix3a[3], mix3b[3];    /* two-step shuffle masks interleaving three vectors */
  /* lane x*K + k <- k*VW + x: pixel interleave of K = 3 or 4 channels (bytes, halfwords) */
  vb4 ileave3_b, ileave4_b;
  vh4 ileave3_h, ileave4_h;
  /* the same from the lane order of saturating packs (pack_store), K = 3 and 4 */
  vb4 packed_b[2];
  uint16_t packed_w[2][2][2 * VW] __attribute__((aligned(64)));
  int next;                 /* next task (atomic) */
  int failed;               /* set when a thread could not allocate its buffers */
  int slots;                /* pool threads that may still join (atomic) */
  int refs;                 /* pool threads working on it (under pool.mu) */
} job_t;

/* acc[cb][PV] over all taps for one tile; cb is a compile-time constant at each call site. */
static inline __attribute__((always_inline)) void conv_block(const int cb, const float *w, int ntaps,
                                                             const int *taps, const float *src,
                                                             float *dst) {
  vf acc[CB][PV];
#pragma GCC unroll 16
  for (int c = 0; c < cb; c++)
#pragma GCC unroll 8
    for (int p = 0; p < PV; p++) acc[c][p] = splat(0.0f);
  for (int t = 0; t < ntaps; t++) {
    const float *sp = src + taps[t];
    vf x[PV];
#pragma GCC unroll 8
    for (int p = 0; p < PV; p++) x[p] = loadu(sp + p * VW);
#pragma GCC unroll 16
    for (int c = 0; c < cb; c++) {
      vf wv = splat(w[c * ntaps + t]);
#pragma GCC unroll 8
      for (int p = 0; p < PV; p++) acc[c][p] += wv * x[p];
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < cb; c++)
#pragma GCC unroll 8
    for (int p = 0; p < PV; p++) storeu(dst + c * TW + p * VW, acc[c][p]);
}

#define BLOCK_CASE(k) \
  case k: conv_block(k, w, ntaps, taps, src, dst); break;

/* Channels [c_begin, c_end) of one tile into buf (row i of TW floats = channel c_begin + i), in
 * register blocks of equal size (a short last block would waste the broadcasts). */
static void conv_tile(const filt_t *m, const float *src, int c_begin, int c_end, float *buf) {
  const int ntaps = m->kh * m->kw;
  const int *taps = m->taps;
  const int total = c_end - c_begin, blocks = (total + CB - 1) / CB;
  for (int b = 0, c0 = 0; b < blocks; b++) {
    const int cb = (total - c0) / (blocks - b);
    const float *w = m->weight + (size_t)(c_begin + c0) * ntaps;
    float *dst = buf + (size_t)c0 * TW;
    switch (cb) {
      EACH_BLOCK_SIZE(BLOCK_CASE)
      default: break;
    }
    c0 += cb;
  }
}

/* ---- Reduced precision (opt-in): the one-layer conv in bf16 (AVX512-BF16), int8 (AVX512-VNNI)
 * or fp16 (ARMv8.2-A FP16), with the reduction, the output map and everything else in fp32.
 * The padded strip is packed in place before the conv: values on the input's grid
 * (v - g0) / gs (exact integers for 8-bit inputs), as bf16 pairs of neighbours (x, x+1), uint8
 * quads (x..x+3) or fp16; weights per output channel as bf16 pairs, int8 quads with one scale
 * per channel (symmetric, max |w| -> 127), or fp16. Output channel = gs * scale * acc + g0 *
 * sum(weights), so the input's affine map costs nothing in precision. */
enum { P_F32 = 0, P_BF16 = 1, P_INT8 = 2, P_FP16 = 3 };
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && VW == 16
#define HAVE_BF16 1
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && VW == 16
#define HAVE_INT8 1
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC) && VW == 4
#define HAVE_FP16 1
typedef _Float16 vh __attribute__((vector_size(2 * TW)));            /* one tile of fp16 pixels */
typedef _Float16 vhu __attribute__((vector_size(2 * TW), aligned(2), may_alias));
typedef float vft __attribute__((vector_size(4 * TW)));              /* the same tile in fp32 */
typedef _Float16 half_alias __attribute__((may_alias));
#endif

/* Taps per packed group (bf16 pairs, uint8 quads, single fp16 values) and bytes per position. */
static int group_taps(int prec) { return prec == P_BF16 ? 2 : (prec == P_INT8 ? 4 : 1); }
static int packed_size(int prec) { return prec == P_FP16 ? 2 : 4; }

/* Positions of a packed strip row that the conv reads (from column 0). */
static inline int packed_width(const job_t *j, const filt_t *m) {
  return ((j->w + TW - 1) / TW) * TW + m->kw - 1;
}

/* Packs rows 0..nrows-1 of the float strip in place (each row keeps its start, ldp floats apart). */
static void pack_strip(const job_t *j, const filt_t *m, float *pad, int nrows) {
#if !(defined(HAVE_BF16) || defined(HAVE_INT8) || defined(HAVE_FP16))
  (void)j, (void)m, (void)pad, (void)nrows; /* float-only build: nothing is ever packed */
#else
  const float g0 = m->g0, inv = 1.0f / m->gs;
  const int n = packed_width(j, m);
  for (int y = 0; y < nrows; y++) {
    float *row = pad + (size_t)y * m->ldp;
    int x = 0;
#if defined(HAVE_BF16)
    if (m->prec == P_BF16)
      for (; x < n; x += 16) { /* loads of x..x+16 precede the store over x..x+15 */
        const __m512 a = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + x), _mm512_set1_ps(g0)), _mm512_set1_ps(inv));
        const __m512 b = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + x + 1), _mm512_set1_ps(g0)), _mm512_set1_ps(inv));
        const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
        const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
        _mm512_storeu_si512(row + x, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
#endif
#if defined(HAVE_INT8)
    if (m->prec == P_INT8)
      for (; x < n; x += 16) {
        __m512i quad = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
          __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + x + k), _mm512_set1_ps(g0)), _mm512_set1_ps(inv));
          v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
          quad = _mm512_or_si512(quad, _mm512_slli_epi32(_mm512_cvtps_epi32(v), 8 * k));
        }
        _mm512_storeu_si512(row + x, quad);
      }
#endif
#if defined(HAVE_FP16)
    if (m->prec == P_FP16) {
      half_alias *dst = (half_alias *)row;
      for (; x < n; x++) dst[x] = (_Float16)((row[x] - g0) * inv); /* reads 4x.., writes 2x..: behind */
    }
#endif
  }
#endif
}

#if defined(HAVE_BF16) || defined(HAVE_INT8) || defined(HAVE_FP16)
/* Channels [c0, c0+cb) of one tile from the packed strip: acc over the packed groups, then
 * gs * scale[c] * acc + g0 * sum[c] into dst (row i of TW floats = channel c0 + i). */
static inline __attribute__((always_inline)) void conv_block_q(const int prec, const int cb,
                                                               const filt_t *m, int c0,
                                                               const char *src, float *dst) {
  const int ng = m->ngroups;
  const int *gt = m->gtaps;
#if defined(HAVE_BF16) || defined(HAVE_INT8)
  if (prec == P_BF16 || prec == P_INT8) {
    const uint32_t *w = (const uint32_t *)m->qweight + (size_t)c0 * ng;
    __m512 accf[CB][PV];
    __m512i acci[CB][PV];
#pragma GCC unroll 16
    for (int c = 0; c < cb; c++)
#pragma GCC unroll 8
      for (int p = 0; p < PV; p++) accf[c][p] = _mm512_setzero_ps(), acci[c][p] = _mm512_setzero_si512();
    for (int g = 0; g < ng; g++) {
      const char *sp = src + gt[g];
      __m512i x[PV];
#pragma GCC unroll 8
      for (int p = 0; p < PV; p++) x[p] = _mm512_loadu_si512(sp + (size_t)p * VW * 4);
#pragma GCC unroll 16
      for (int c = 0; c < cb; c++) {
        const __m512i wv = _mm512_set1_epi32((int)w[(size_t)c * ng + g]);
#pragma GCC unroll 8
        for (int p = 0; p < PV; p++) {
#if defined(HAVE_BF16)
          if (prec == P_BF16) accf[c][p] = _mm512_dpbf16_ps(accf[c][p], (__m512bh)x[p], (__m512bh)wv);
#endif
#if defined(HAVE_INT8)
          if (prec == P_INT8) acci[c][p] = _mm512_dpbusd_epi32(acci[c][p], x[p], wv);
#endif
        }
      }
    }
#pragma GCC unroll 16
    for (int c = 0; c < cb; c++) {
      const __m512 a = _mm512_set1_ps(m->gs * m->qscale[c0 + c]), b = _mm512_set1_ps(m->g0 * m->qsum[c0 + c]);
#pragma GCC unroll 8
      for (int p = 0; p < PV; p++) {
        const __m512 v = prec == P_INT8 ? _mm512_cvtepi32_ps(acci[c][p]) : accf[c][p];
        _mm512_storeu_ps(dst + c * TW + p * VW, _mm512_fmadd_ps(v, a, b));
      }
    }
    return;
  }
#endif
#if defined(HAVE_FP16)
  if (prec == P_FP16) {
    const _Float16 *w = (const _Float16 *)m->qweight + (size_t)c0 * ng;
    vh acc[CB];
#pragma GCC unroll 16
    for (int c = 0; c < cb; c++) acc[c] = (vh){0};
    for (int g = 0; g < ng; g++) {
      const vh x = *(const vhu *)(src + gt[g]);
#pragma GCC unroll 16
      for (int c = 0; c < cb; c++) acc[c] += w[(size_t)c * ng + g] * x;
    }
#pragma GCC unroll 16
    for (int c = 0; c < cb; c++) {
      const vft v = __builtin_convertvector(acc[c], vft) * (m->gs * m->qscale[c0 + c]) + m->g0 * m->qsum[c0 + c];
      memcpy(dst + c * TW, &v, sizeof v);
    }
  }
#endif
}

#define QBLOCK_CASE(k) \
  case k: conv_block_q(prec, k, m, c_begin + c0, src, buf + (size_t)c0 * TW); break;

/* conv_tile for a packed strip (src: the tile's first pixel in packed row 0). */
static inline __attribute__((always_inline)) void conv_tile_q(const int prec, const filt_t *m,
                                                              const char *src, int c_begin,
                                                              int c_end, float *buf) {
  const int total = c_end - c_begin, blocks = (total + CB - 1) / CB;
  for (int b = 0, c0 = 0; b < blocks; b++) {
    const int cb = (total - c0) / (blocks - b);
    switch (cb) {
      EACH_BLOCK_SIZE(QBLOCK_CASE)
      default: break;
    }
    c0 += cb;
  }
}
#endif

/* One out-of-line conv_tile_q per precision: inlined into every strip_model variant they made
 * the build several times slower. */
#if defined(HAVE_BF16)
static void conv_tile_bf16(const filt_t *m, const char *src, int c_begin, int c_end, float *buf) {
  conv_tile_q(P_BF16, m, src, c_begin, c_end, buf);
}
#endif
#if defined(HAVE_INT8)
static void conv_tile_int8(const filt_t *m, const char *src, int c_begin, int c_end, float *buf) {
  conv_tile_q(P_INT8, m, src, c_begin, c_end, buf);
}
#endif
#if defined(HAVE_FP16)
static void conv_tile_fp16(const filt_t *m, const char *src, int c_begin, int c_end, float *buf) {
  conv_tile_q(P_FP16, m, src, c_begin, c_end, buf);
}
#endif

/* The tile's channels at the precision of m (fp32: conv_tile on the float strip). */
static inline __attribute__((always_inline)) void conv_tile_any(const filt_t *m, const float *pad,
                                                                int y, int x0, int c_begin,
                                                                int c_end, float *buf) {
  switch (m->prec) {
#if defined(HAVE_BF16)
    case P_BF16:
      conv_tile_bf16(m, (const char *)(pad + (size_t)y * m->ldp) + (size_t)x0 * 4, c_begin, c_end, buf);
      return;
#endif
#if defined(HAVE_INT8)
    case P_INT8:
      conv_tile_int8(m, (const char *)(pad + (size_t)y * m->ldp) + (size_t)x0 * 4, c_begin, c_end, buf);
      return;
#endif
#if defined(HAVE_FP16)
    case P_FP16:
      conv_tile_fp16(m, (const char *)(pad + (size_t)y * m->ldp) + (size_t)x0 * 2, c_begin, c_end, buf);
      return;
#endif
    default:
      conv_tile(m, pad + (size_t)y * m->ldp + x0, c_begin, c_end, buf);
  }
}

/* Which precisions this build runs: bit p set for P_BF16, P_INT8, P_FP16 (bit 0: fp32). */
int edgesr_precisions(void) {
  int mask = 1 << P_F32;
#if defined(HAVE_BF16)
  mask |= 1 << P_BF16;
#endif
#if defined(HAVE_INT8)
  mask |= 1 << P_INT8;
#endif
#if defined(HAVE_FP16)
  mask |= 1 << P_FP16;
#endif
  return mask;
}

/* Permutes from pixel order to channel-major lanes (lane k*16 + i <- pixel i, channel k) for
 * 3 and 4 channels: bytes, and the two halves of the uint16 case. */
#if defined(__AVX512VBMI__) && VW == 16
static const uint8_t deint3_b[64] __attribute__((aligned(64))) = {0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 44, 47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint16_t deint3_lo[32] __attribute__((aligned(64))) = {0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46};
static const uint16_t deint3_hi[32] __attribute__((aligned(64))) = {2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 44, 47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t deint4_b[64] __attribute__((aligned(64))) = {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58, 62, 3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63};
static const uint16_t deint4_lo[32] __attribute__((aligned(64))) = {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61};
static const uint16_t deint4_hi[32] __attribute__((aligned(64))) = {2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58, 62, 3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63};
#endif

/* Planes from one row of interleaved pixels: dst[p][x] = offset[p] + sum_k coef[p][k] *
 * src[x*C + k] for NP planes. type, C and NP are constants at each call site, so the channel
 * loops unroll; one pass over the row serves every plane of a colour image. */
static inline __attribute__((always_inline)) void read_rows_t(const int type, const int C,
                                                              const int NP, const void *row,
                                                              const float (*coef)[MAXP],
                                                              const float *offset, float *const *dst,
                                                              int w) {
  int x = 0;
#if defined(__AVX512VBMI__) && VW == 16
  if (type != T_F32 && (C == 3 || C == 4)) {
    /* 16 pixels per step: one masked load, one permute to channel-major lanes, then widen;
     * the scalar loop below measured 5x slower for RGB uint8 (strided byte loads). */
    vf cf[NP][C], off[NP];
    for (int p = 0; p < NP; p++) {
      off[p] = splat(offset[p]);
      for (int k = 0; k < C; k++) cf[p][k] = splat(coef[p][k]);
    }
    const __m512i idx_b = _mm512_load_si512(C == 3 ? deint3_b : deint4_b);
    const __m512i idx_lo = _mm512_load_si512(C == 3 ? deint3_lo : deint4_lo);
    const __m512i idx_hi = _mm512_load_si512(C == 3 ? deint3_hi : deint4_hi);
    for (; x + 16 <= w; x += 16) {
      vf e[4];
      if (type == T_U8) {
        const uint8_t *src = (const uint8_t *)row + (size_t)x * C;
        __m512i v = _mm512_maskz_loadu_epi8(C == 3 ? 0xFFFFFFFFFFFFull : ~0ull, src);
        v = _mm512_permutexvar_epi8(idx_b, v);
        e[0] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(v)));
        e[1] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 1)));
        e[2] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 2)));
        if (C == 4) e[3] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 3)));
      } else {
        const uint16_t *src = (const uint16_t *)row + (size_t)x * C;
        __m512i a = _mm512_loadu_si512(src);
        __m512i b = _mm512_maskz_loadu_epi16(C == 3 ? 0xFFFFu : 0xFFFFFFFFu, src + 32);
        __m512i c01 = _mm512_permutex2var_epi16(a, idx_lo, b);
        __m512i c23 = _mm512_permutex2var_epi16(a, idx_hi, b);
        e[0] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(c01)));
        e[1] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(c01, 1)));
        e[2] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(c23)));
        if (C == 4) e[3] = (vf)_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(c23, 1)));
      }
      for (int p = 0; p < NP; p++) {
        vf acc = off[p];
        for (int k = 0; k < C; k++) acc += cf[p][k] * e[k];
        storeu(dst[p] + x, acc);
      }
    }
  }
#endif
  for (; x < w; x++) {
    float e[4];
    for (int k = 0; k < C; k++) {
      const size_t i = (size_t)x * C + k;
      e[k] = type == T_F32 ? ((const float *)row)[i]
             : type == T_U8 ? (float)((const uint8_t *)row)[i]
                            : (float)((const uint16_t *)row)[i];
    }
    for (int p = 0; p < NP; p++) {
      float v = offset[p];
      for (int k = 0; k < C; k++) v += coef[p][k] * e[k];
      dst[p][x] = v;
    }
  }
}

static void read_rows(const buf_t *b, const void *row, int np, const float (*coef)[MAXP],
                      const float *offset, float *const *dst, int w) {
#define RR(t, c, n) read_rows_t(t, c, n, row, coef, offset, dst, w)
#define BY_NP(t, c)                 \
  switch (np) {                     \
    case 1: RR(t, c, 1); break;     \
    case 2: RR(t, c, 2); break;     \
    case 3: RR(t, c, 3); break;     \
    default: RR(t, c, 4); break;    \
  }
#define BY_C(t)                     \
  switch (b->pixel) {               \
    case 1: RR(t, 1, 1); break;     \
    case 3: BY_NP(t, 3) break;      \
    default: BY_NP(t, 4) break;     \
  }
  if (b->type == T_U8) {
    BY_C(T_U8)
  } else if (b->type == T_U16) {
    BY_C(T_U16)
  } else {
    BY_C(T_F32)
  }
#undef BY_C
#undef BY_NP
#undef RR
}

/* Padded input strips for LR rows y0..y0+SH of np planes at once, each for its filter f[p]:
 * the rows the filter reads, values mapped by coef[p]/offset[p], zeros outside the image
 * (border[p] 0) or the nearest edge pixel (1). Every source row is read once for all planes. */
static void fill_strips(const job_t *j, int np, const filt_t *const *f, const int *border,
                        const float (*coef)[MAXP], const float *offset, int img, int y0,
                        float *const *pad, float *dummy) {
  const size_t esize = type_size(j->in.type);
  const char *base = (const char *)j->in.ptr + esize * (size_t)img * j->in.plane;
  int top = 0, bottom = 0;
  for (int p = 0; p < np; p++) {
    if (f[p]->pad_top > top) top = f[p]->pad_top;
    if (f[p]->kh - 1 - f[p]->pad_top > bottom) bottom = f[p]->kh - 1 - f[p]->pad_top;
  }
  for (int v = y0 - top; v < y0 + SH + bottom; v++) {
    const int outside = v < 0 || v >= j->h, iy = v < 0 ? 0 : (v >= j->h ? j->h - 1 : v);
    float *rows[MAXP];
    int used = 0;
    for (int p = 0; p < np; p++) {
      const int py = v - y0 + f[p]->pad_top;
      rows[p] = dummy;
      if (py < 0 || py >= SH + f[p]->kh - 1) continue;
      float *dst = pad[p] + (size_t)py * f[p]->ldp;
      if (outside && !border[p]) {
        memset(dst, 0, sizeof(float) * f[p]->ldp);
        continue;
      }
      rows[p] = dst + f[p]->pad_left;
      used = 1;
    }
    if (!used) continue;
    if (v + 1 < y0 + SH + bottom && v + 1 < j->h && v + 1 >= 0)
      prefetch_bytes(base + esize * (size_t)(v + 1) * j->in.row, esize * (size_t)j->w * j->in.pixel, 0);
    read_rows(&j->in, base + esize * (size_t)iy * j->in.row, np, coef, offset, rows, j->w);
    for (int p = 0; p < np; p++) {
      if (rows[p] == dummy) continue;
      float *dst = rows[p] - f[p]->pad_left, *row = rows[p];
      const float left = border[p] ? row[0] : 0.0f, right = border[p] ? row[j->w - 1] : 0.0f;
      for (int x = 0; x < f[p]->pad_left; x++) dst[x] = left;
      for (int x = f[p]->pad_left + j->w; x < f[p]->ldp; x++) dst[x] = right;
    }
  }
}

/* The reduction of one phase at one pixel vector: buf holds the tile's channels of a group of
 * phases, phase-major ((phase * F + k) * C + c rows of TW floats). mode is a constant at each
 * call site (always_inline), so the compiler drops the other branches. */
static inline __attribute__((always_inline)) vf reduce_vec(const int mode, const float *buf, int C,
                                                           int o) {
  if (mode == 0) {
    vf out = loadu(buf + o);
    for (int c = 1; c < C; c++) out = vmax(out, loadu(buf + (size_t)c * TW + o));
    return out;
  }
  const float *val = buf, *key = buf + (size_t)(mode == 1 ? C : 2 * C) * TW;
  const float *qry = buf + (size_t)C * TW;
  vf m = splat(-INFINITY);
  for (int c = 0; c < C; c++) {
    vf a = loadu(key + (size_t)c * TW + o);
    if (mode == 2) a = a * loadu(qry + (size_t)c * TW + o);
    m = vmax(m, a);
  }
  vf num = splat(0.0f), den = splat(0.0f);
  for (int c = 0; c < C; c++) {
    vf a = loadu(key + (size_t)c * TW + o);
    if (mode == 2) a = a * loadu(qry + (size_t)c * TW + o);
    vf e = vexp_nonpos(a - m);
    num += e * loadu(val + (size_t)c * TW + o);
    den += e;
  }
  return num / den;
}


/* Store one vector of values as type otype (integers clamped to lo..hi, rounded half to even). */
static inline __attribute__((always_inline)) void store_vec(const int otype, const omap_t *om,
                                                            char *dst, vf v) {
  if (otype == T_F32) {
    storeu((float *)dst, v);
    return;
  }
  vi r = vrint(vmin(vmax(v, splat(om->lo)), splat(om->hi)));
  if (otype == T_U8)
    *(vu8u *)dst = __builtin_convertvector(r, vu8);
  else
    *(vu16u *)dst = __builtin_convertvector(r, vu16);
}

/* Interleave s phase vectors v[q][i] to o[k] = HR pixels k*VW .. k*VW+VW-1 (lane i*s + q) in
 * registers; returns 0 where the compiler has no vector shuffle (the callers then go scalar). */
static inline __attribute__((always_inline)) int zip_phases(const job_t *j, const vf *v, const int s,
                                                            vf *o) {
#if defined(__GNUC__) && !defined(__clang__)
  if (s == 2) {
    o[0] = __builtin_shuffle(v[0], v[1], j->zip_lo);
    o[1] = __builtin_shuffle(v[0], v[1], j->zip_hi);
  } else if (s == 4) {
    vf t0 = __builtin_shuffle(v[0], v[2], j->zip_lo), t1 = __builtin_shuffle(v[0], v[2], j->zip_hi);
    vf t2 = __builtin_shuffle(v[1], v[3], j->zip_lo), t3 = __builtin_shuffle(v[1], v[3], j->zip_hi);
    o[0] = __builtin_shuffle(t0, t2, j->zip_lo), o[1] = __builtin_shuffle(t0, t2, j->zip_hi);
    o[2] = __builtin_shuffle(t1, t3, j->zip_lo), o[3] = __builtin_shuffle(t1, t3, j->zip_hi);
  } else {
    for (int k = 0; k < 3; k++)
      o[k] = __builtin_shuffle(__builtin_shuffle(v[0], v[1], j->mix3a[k]), v[2], j->mix3b[k]);
  }
  return 1;
#else
  (void)j, (void)v, (void)s, (void)o;
  return 0;
#endif
}

/* Affine map, then interleave s phase vectors v[q][i] to out[i*s + q] (count LR pixels). */
static inline __attribute__((always_inline)) void store_phases(const job_t *j, const omap_t *om,
                                                               vf *v, const int s, const int otype,
                                                               void *out_row, int count) {
  const float a = om->scale, b = om->offset;
  const size_t esize = type_size(otype);
  if (a != 1.0f || b != 0.0f)
    for (int q = 0; q < s; q++) v[q] = v[q] * a + b;
  vf o[4];
  if (count >= VW && zip_phases(j, v, s, o)) {
    for (int k = 0; k < s; k++) store_vec(otype, om, (char *)out_row + esize * k * VW, o[k]);
    return;
  }
  float tmp[4][VW];
  for (int q = 0; q < s; q++) storeu(tmp[q], v[q]);
  for (int x = 0; x < count; x++)
    for (int q = 0; q < s; q++) {
      float c = tmp[q][x];
      char *dst = (char *)out_row + esize * (size_t)(x * s + q);
      if (otype == T_F32) {
        *(float *)dst = c;
        continue;
      }
      c = c < om->lo ? om->lo : (c > om->hi ? om->hi : c);
      if (otype == T_U8)
        *(uint8_t *)dst = (uint8_t)(int)__builtin_rintf(c);
      else
        *(uint16_t *)dst = (uint16_t)(int)__builtin_rintf(c);
    }
}

/* A one-layer model over the padded strip of LR rows y0..y1: output rows (y - y0)*s + r go to
 * dst (ldo elements apart). */
static inline __attribute__((always_inline)) void strip_model(const int mode, const int s,
                                                              const int otype, const job_t *j,
                                                              const filt_t *m, const omap_t *om,
                                                              const float *pad, float *buf,
                                                              int rows, char *dst, long ldo) {
  const int fc = m->f * m->c;
  const size_t esize = type_size(otype);
  if (m->prec) pack_strip(j, m, (float *)pad, rows + m->kh - 1);
  for (int y = 0; y < rows; y++) {
    for (int x0 = 0; x0 < j->w; x0 += TW) {
      for (int r0 = 0; r0 < s; r0 += m->group_rows) {
        const int r1 = r0 + m->group_rows < s ? r0 + m->group_rows : s;
        conv_tile_any(m, pad, y, x0, r0 * s * fc, r1 * s * fc, buf);
        for (int r = r0; r < r1; r++) {
          char *row = dst + esize * (size_t)(y * s + r) * ldo;
          for (int p = 0; p < PV; p++) {
            const int x = x0 + p * VW;
            if (x >= j->w) break;
            vf v[4];
            for (int q = 0; q < s; q++)
              v[q] = reduce_vec(mode, buf + (size_t)((r - r0) * s + q) * fc * TW, m->c, p * VW);
            store_phases(j, om, v, s, otype, row + esize * (size_t)x * s, j->w - x < VW ? j->w - x : VW);
          }
        }
      }
    }
  }
}

/* The filter of a sep_color job (see fits_sep_color): the model's when it has one (Bicubic ids),
 * else the chroma bicubic. */
static inline const filt_t *sep_filter(const job_t *j) { return j->model.taps ? &j->model : &j->chroma; }

/* Vectors of a separable filter's vertical pass per LR row: every lane the horizontal pass reads
 * is written. */
static inline int sep_vectors(const job_t *j, const filt_t *m) { return (j->w + m->kw - 1 + VW - 1) / VW + 1; }

/* The 4-tap passes of a separable filter (bicubic), shared by strip_sep and sep_color_t. Every
 * phase's 4 taps start at vlo[0] + TAPS4_SHIFT (hlo alike, see prepare_filter), so one window of
 * 5 inputs, loaded once, serves all s phases: 5 loads per vector instead of 4s (the horizontal
 * ones are unaligned and cross cache lines; measured 10% of Bicubic_s2 RGB's time).
 * taps4_coefs: the phases' coefficients, broadcast once by the caller and kept in registers
 * (measured 1.6x faster than broadcasting them at every use). */
typedef struct {
  vf c[4][4];
} taps4_t;

static inline __attribute__((always_inline)) void taps4_coefs(const float *f, int len, const int *lo,
                                                              int s, taps4_t *t) {
  for (int q = 0; q < s; q++)
    for (int b = 0; b < 4; b++) t->c[q][b] = splat(f[q * len + lo[q] + b]);
}

/* Phase q of the window in[0..4] (q and s constants at every call site). */
static inline __attribute__((always_inline)) vf taps4_phase(const taps4_t *t, const int q, const int s,
                                                            const vf *in) {
  const int d = TAPS4_SHIFT(q, s);
  vf acc = t->c[q][0] * in[d];
#pragma GCC unroll 4
  for (int b = 1; b < 4; b++) acc += t->c[q][b] * in[d + b];
  return acc;
}

/* The vertical pass of all s row phases over the nv vectors of one LR row (the strip rows from
 * src_row) into tmp + r * stride. */
static inline __attribute__((always_inline)) void vert_pass4(const filt_t *m, const taps4_t *vt,
                                                             const int s, const float *src_row,
                                                             int nv, float *tmp, size_t stride) {
  const long ldp = m->ldp;
  const float *src = src_row + (size_t)m->vlo[0] * ldp;
  for (int i = 0; i < nv; i++) {
    vf in[5];
#pragma GCC unroll 5
    for (int a = 0; a < 5; a++) in[a] = loadu(src + (size_t)a * ldp + i * VW);
#pragma GCC unroll 4
    for (int r = 0; r < s; r++) storeu(tmp + r * stride + i * VW, taps4_phase(vt, r, s, in));
  }
}

/* The horizontal filters of all s column phases at LR pixels x.. of a vertical pass row t. */
static inline __attribute__((always_inline)) void horz4(const filt_t *m, const taps4_t *ht,
                                                        const int s, const float *t, vf *v) {
  vf in[5];
  t += m->hlo[0];
#pragma GCC unroll 5
  for (int b = 0; b < 5; b++) in[b] = loadu(t + b);
#pragma GCC unroll 4
  for (int q = 0; q < s; q++) v[q] = taps4_phase(ht, q, s, in);
}

/* Separable filters (Bicubic): out[y*s + r][x*s + q] = sum_a sum_b vert[r][a] horz[q][b]
 * in[y + a][x + b]. Per LR row, the vertical passes of the row phases over the whole row into tmp
 * (one row of tmp per phase), then per row phase s horizontal filters reading tmp at unaligned
 * offsets: s*kh + s*s*kw multiply-adds per LR pixel instead of s*s*kh*kw. (Tile-sized vertical
 * passes reloaded at once stall store forwarding, and shifting them in registers costs a permute
 * per tap: both measured slower.) NT: 4 for 4-tap filters sharing a 5-tap window (taps4: bicubic;
 * the loops unroll), else 0 (any taps, per phase). */
static inline __attribute__((always_inline)) void strip_sep(const int NT, const int s,
                                                            const int otype, const job_t *j,
                                                            const filt_t *m, const omap_t *om,
                                                            const float *pad, float *tmp, int rows,
                                                            char *dst, long ldo) {
  const int kh = m->kh, kw = m->kw, w = j->w;
  const long ldp = m->ldp;
  const int nv = sep_vectors(j, m);
  const size_t esize = type_size(otype), stride = (size_t)nv * VW;
  const omap_t map = *om; /* locals: stores through dst cannot alias them */
  taps4_t vt, ht;
  if (NT) taps4_coefs(m->vert, kh, m->vlo, s, &vt), taps4_coefs(m->horz, kw, m->hlo, s, &ht);
  for (int y = 0; y < rows; y++) {
    const float *src_row = pad + (size_t)y * ldp;
    if (NT) vert_pass4(m, &vt, s, src_row, nv, tmp, stride);
    for (int r = 0; r < s; r++) {
      float *t = NT ? tmp + r * stride : tmp;
      if (!NT) {
        const float *fv = m->vert + r * kh;
        for (int i = 0; i < nv; i++) {
          vf acc = splat(0.0f);
          for (int a = m->vlo[r]; a < m->vhi[r]; a++) acc += splat(fv[a]) * loadu(src_row + (size_t)a * ldp + i * VW);
          storeu(t + i * VW, acc);
        }
      }
      char *row = dst + esize * (size_t)(y * s + r) * ldo;
      for (int x = 0; x < w; x += VW) {
        vf v[4];
        if (NT) {
          horz4(m, &ht, s, t + x, v);
        } else {
          for (int q = 0; q < s; q++) {
            v[q] = splat(0.0f);
            for (int b = m->hlo[q]; b < m->hhi[q]; b++) v[q] += splat(m->horz[q * kw + b]) * loadu(t + x + b);
          }
        }
        store_phases(j, &map, v, s, otype, row + esize * (size_t)x * s, w - x < VW ? w - x : VW);
      }
    }
  }
}

/* Runs filter m over a filled padded strip; one specialisation per (mode, scale, output type):
 * the reduction and the interleave then run with constant loop counts (measured 1.3x faster on
 * eSR-MAX_s2_K3_C2 than generic). */
static void run_filter(const job_t *j, const filt_t *m, const omap_t *om, int otype,
                       const float *pad, float *buf, int rows, char *dst, long ldo) {
#define ARGS j, m, om, pad, buf, rows, dst, ldo
#define SEP(sc, t) (m->taps4 ? strip_sep(4, sc, t, ARGS) : strip_sep(0, sc, t, ARGS))
#define BY_SCALE(CALL, t)                   \
  switch (j->s) {                           \
    case 2: CALL(2, t); break;              \
    case 3: CALL(3, t); break;              \
    default: CALL(4, t); break;             \
  }
#define BY_TYPE(CALL)                                \
  if (otype == T_F32) {                              \
    BY_SCALE(CALL, T_F32)                            \
  } else if (otype == T_U8) {                        \
    BY_SCALE(CALL, T_U8)                             \
  } else {                                           \
    BY_SCALE(CALL, T_U16)                            \
  }
  if (!m->weight) {
    BY_TYPE(SEP)
    return;
  }
#define M0(sc, t) strip_model(0, sc, t, ARGS)
#define M1(sc, t) strip_model(1, sc, t, ARGS)
#define M2(sc, t) strip_model(2, sc, t, ARGS)
  switch (m->mode) {
    case 0: BY_TYPE(M0) break;
    case 1: BY_TYPE(M1) break;
    default: BY_TYPE(M2) break;
  }
#undef M0
#undef M1
#undef M2
#undef BY_TYPE
#undef BY_SCALE
#undef SEP
#undef ARGS
}

/* Per-thread scratch: the padded strip, the filter's tile buffer and (colour jobs) one strip of
 * each filtered plane. */
typedef struct {
  float *pad[MAXP], *buf, *plane[MAXP], *dummy;
} scratch_t;


/* Halfword permutes from channel-major lanes (two zmm: channels 0-1, 2-3) to pixel order. */
#if defined(__AVX512BW__) && VW == 16
static const uint16_t ileave3_w[64] = {0, 16, 32, 1, 17, 33, 2, 18, 34, 3, 19, 35, 4, 20, 36, 5, 21, 37, 6, 22, 38, 7, 23, 39, 8, 24, 40, 9, 25, 41, 10, 26, 42, 11, 27, 43, 12, 28, 44, 13, 29, 45, 14, 30, 46, 15, 31, 47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint16_t ileave4_w[64] = {0, 16, 32, 48, 1, 17, 33, 49, 2, 18, 34, 50, 3, 19, 35, 51, 4, 20, 36, 52, 5, 21, 37, 53, 6, 22, 38, 54, 7, 23, 39, 55, 8, 24, 40, 56, 9, 25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59, 12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
#endif

#if defined(__AVX512F__) && VW == 16
/* Store K*VW interleaved pixels from zmm registers: bytes (v: 48 or 64) or halfwords (lo, hi:
 * 64 + 32 or 64 + 64 bytes). 48 bytes go as 32 + 16: a masked 512-bit store measured slower on
 * AMD. Shared by store_pixels and pack_store. */
static inline __attribute__((always_inline)) void store_bytes_k(const int K, char *dst, __m512i v) {
  if (K == 4) {
    _mm512_storeu_si512(dst, v);
  } else {
    _mm256_storeu_si256((__m256i *)dst, _mm512_castsi512_si256(v));
    _mm_storeu_si128((__m128i *)(dst + 32), _mm512_extracti32x4_epi32(v, 2));
  }
}

static inline __attribute__((always_inline)) void store_halves_k(const int K, char *dst, __m512i lo,
                                                                 __m512i hi) {
  _mm512_storeu_si512(dst, lo);
  if (K == 4)
    _mm512_storeu_si512(dst + 64, hi);
  else
    _mm256_storeu_si256((__m256i *)(dst + 64), _mm512_castsi512_si256(hi));
}
#endif

/* Interleave K channel vectors (lane k*VW + x) to pixel order (lane x*K + k) and store K*VW
 * integers: one permute instead of K*VW scalar stores. */
static inline __attribute__((always_inline)) void store_pixels(const int otype, const int K,
                                                               const job_t *j, vi *ch, char *dst) {
#if defined(__AVX512VBMI__) && VW == 16
  if (otype == T_U8) {
    /* four int32x16 -> bytes in one zmm, all in registers (a union through the stack measured
     * 2x slower: the 64-byte reload cannot forward from four 16-byte stores) */
    __m512i v = _mm512_castsi128_si512(_mm512_cvtepi32_epi8((__m512i)ch[0]));
    v = _mm512_inserti64x2(v, _mm512_cvtepi32_epi8((__m512i)ch[1]), 1);
    v = _mm512_inserti64x2(v, _mm512_cvtepi32_epi8((__m512i)ch[2]), 2);
    if (K == 4) v = _mm512_inserti64x2(v, _mm512_cvtepi32_epi8((__m512i)ch[3]), 3);
    store_bytes_k(K, dst, _mm512_permutexvar_epi8((__m512i)(K == 3 ? j->ileave3_b : j->ileave4_b), v));
    return;
  }
#endif
#if defined(__AVX512BW__) && VW == 16
  if (otype == T_U16) {
    /* channel-major halfwords in two zmm, then two permutes to pixel order (the generic
     * shuffle below goes through memory: measured 4x slower for RGB uint16) */
    __m512i c01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16((__m512i)ch[0])),
                                     _mm512_cvtepi32_epi16((__m512i)ch[1]), 1);
    __m512i c23 = _mm512_castsi256_si512(_mm512_cvtepi32_epi16((__m512i)ch[2]));
    if (K == 4) c23 = _mm512_inserti64x4(c23, _mm512_cvtepi32_epi16((__m512i)ch[3]), 1);
    const uint16_t *idx = K == 3 ? ileave3_w : ileave4_w;
    store_halves_k(K, dst, _mm512_permutex2var_epi16(c01, _mm512_loadu_si512(idx), c23),
                   _mm512_permutex2var_epi16(c01, _mm512_loadu_si512(idx + 32), c23));
    return;
  }
#endif
  if (otype == T_U8) {
    union { vb4 v; vu8 c[4]; } u;
    for (int k = 0; k < 4; k++) u.c[k] = k < K ? __builtin_convertvector(ch[k], vu8) : (vu8){0};
    vb4 o = __builtin_shuffle(u.v, K == 3 ? j->ileave3_b : j->ileave4_b);
    memcpy(dst, &o, (size_t)K * VW);
  } else {
    union { vh4 v; vu16 c[4]; } u;
    for (int k = 0; k < 4; k++) u.c[k] = k < K ? __builtin_convertvector(ch[k], vu16) : (vu16){0};
    vh4 o = __builtin_shuffle(u.v, K == 3 ? j->ileave3_h : j->ileave4_h);
    memcpy(dst, &o, (size_t)K * VW * 2);
  }
}

/* The colour mix as vectors: out[k] = round(clamp(ooff[k] + sum_p mat[k][p] t[p], 0, peak)),
 * model planes (kinds 0 and 2) clipped to 0..1 first, chroma planes (kind 1) not. */
typedef struct {
  vf mat[MAXP][MAXP], off[MAXP], peak;
  int clip[MAXP];
  int saturate; /* peak is the output type's maximum: saturating packs do the clamp */
} mix_t;

static inline __attribute__((always_inline)) void mix_init(const job_t *j, const int K, mix_t *c) {
  for (int k = 0; k < K; k++) {
    c->off[k] = splat(j->ooff[k]);
    for (int p = 0; p < K; p++) c->mat[k][p] = splat(j->mat[k][p]);
    c->clip[k] = j->kind[k] != 1;
  }
  c->peak = splat(j->peak);
  c->saturate = j->peak == (j->out.type == T_U8 ? 255.0f : 65535.0f);
}

#if defined(__AVX512BW__) && VW == 16
/* Round K channel vectors and store VW pixels interleaved, the clamp to 0..peak done by
 * saturating packs (peak being the type's maximum): three packs instead of six min/max and
 * four narrowing moves. The packs leave channel k of pixel 4L + i at lane L*16 + k*4 + i
 * (bytes) or, per pair of channels, L*8 + (k % 2)*4 + i (halfwords); one permute interleaves. */
static inline __attribute__((always_inline)) void pack_store(const int otype, const int K,
                                                             const job_t *j, const vf *o, char *dst) {
  const __m512i c0 = (__m512i)vrint(o[0]), c1 = (__m512i)vrint(o[1]), c2 = (__m512i)vrint(o[2]);
  const __m512i c3 = K == 4 ? (__m512i)vrint(o[3]) : c2;
  if (otype == T_U16) {
    const __m512i p01 = _mm512_packus_epi32(c0, c1), p23 = _mm512_packus_epi32(c2, c3);
    store_halves_k(K, dst, _mm512_permutex2var_epi16(p01, _mm512_load_si512(j->packed_w[K - 3][0]), p23),
                   _mm512_permutex2var_epi16(p01, _mm512_load_si512(j->packed_w[K - 3][1]), p23));
    return;
  }
  /* signed packs to int16 first: an unsigned pack of values >= 32768 would read as negative */
  const __m512i b = _mm512_packus_epi16(_mm512_packs_epi32(c0, c1), _mm512_packs_epi32(c2, c3));
  store_bytes_k(K, dst, _mm512_permutexvar_epi8((__m512i)j->packed_b[K - 3], b));
}
#endif

/* Mix K plane vectors tv (VW HR pixels) and store count pixels of K channels at d, interleaved
 * (j->out.pixel elements apart). */
static inline __attribute__((always_inline)) void mix_store(const int otype, const int K,
                                                            const job_t *j, const mix_t *c, vf *tv,
                                                            char *d, int count) {
  const vf zero = splat(0.0f), one = splat(1.0f);
  for (int p = 0; p < K; p++)
    if (c->clip[p]) tv[p] = vmin(vmax(tv[p], zero), one);
  vf o[MAXP];
  for (int k = 0; k < K; k++) {
    o[k] = c->off[k];
    for (int p = 0; p < K; p++) o[k] += c->mat[k][p] * tv[p];
  }
  const int whole = count == VW && K == j->out.pixel && (K == 3 || K == 4);
#if defined(__AVX512VBMI__) && VW == 16
  if (whole && c->saturate) {
    pack_store(otype, K, j, o, d);
    return;
  }
#endif
  vi ch[MAXP];
  for (int k = 0; k < K; k++) ch[k] = vrint(vmin(vmax(o[k], zero), c->peak));
  if (whole) {
    store_pixels(otype, K, j, ch, d);
    return;
  }
  int32_t lanes[MAXP][VW];
  for (int k = 0; k < K; k++) memcpy(lanes[k], &ch[k], sizeof lanes[k]);
  for (int x = 0; x < count; x++)
    for (int k = 0; k < K; k++) {
      if (otype == T_U8)
        ((uint8_t *)d)[x * j->out.pixel + k] = (uint8_t)lanes[k][x];
      else
        ((uint16_t *)d)[x * j->out.pixel + k] = (uint16_t)lanes[k][x];
    }
}

/* Colour output for the strip's rows from the filtered planes (sc->plane, or j->pre for kind 2).
 * K output channels from K planes (every plan has as many planes as outputs). */
static inline __attribute__((always_inline)) void color_rows_t(const int otype, const int K,
                                                               const job_t *j, int img, int y0,
                                                               int rows, scratch_t *sc) {
  const int s = j->s, ow = j->w * s;
  const size_t esize = type_size(otype);
  mix_t c;
  mix_init(j, K, &c);
  for (int r = 0; r < rows * s; r++) {
    const float *t[MAXP];
    for (int p = 0, pi = 0; p < K; p++) {
      if (j->kind[p] == 2)
        t[p] = j->pre + ((size_t)(img * j->npre + pi++) * j->h * s + (size_t)y0 * s + r) * ow;
      else
        t[p] = sc->plane[p] + (size_t)r * ow;
    }
    char *orow = (char *)j->out.ptr +
                 esize * ((size_t)img * j->out.plane + (size_t)(y0 * s + r) * j->out.row);
    if (r + 1 < rows * s) prefetch_bytes(orow + esize * j->out.row, esize * (size_t)ow * K, 1);
    for (int x0 = 0; x0 < ow; x0 += VW) {
      const int count = ow - x0 < VW ? ow - x0 : VW;
      vf tv[MAXP];
      for (int p = 0; p < K; p++) {
        if (count == VW) {
          tv[p] = loadu(t[p] + x0);
        } else {
          float tail[VW] = {0};
          memcpy(tail, t[p] + x0, sizeof(float) * count);
          tv[p] = loadu(tail);
        }
      }
      mix_store(otype, K, j, &c, tv, orow + esize * (size_t)x0 * j->out.pixel, count);
    }
  }
}

static void color_rows(const job_t *j, int img, int y0, int rows, scratch_t *sc) {
#define BY_K(t)                                              \
  switch (j->outs) {                                         \
    case 1: color_rows_t(t, 1, j, img, y0, rows, sc); break; \
    case 2: color_rows_t(t, 2, j, img, y0, rows, sc); break; \
    case 3: color_rows_t(t, 3, j, img, y0, rows, sc); break; \
    default: color_rows_t(t, 4, j, img, y0, rows, sc); break; \
  }
  if (j->out.type == T_U8) {
    BY_K(T_U8)
  } else {
    BY_K(T_U16)
  }
#undef BY_K
}

/* Bicubic ids: every plane through the same 4-tap separable filter (sep_filter: Y' and chroma alike),
 * the mix done in registers on each vector of HR pixels: no plane is written to memory. Per LR
 * row, the vertical passes of all row phases of every plane into tmp, then per row phase the
 * horizontal ones and the mix on each vector. (Chroma filtered this way next to a one-layer
 * model's Y' rows measured 1.05-1.2x slower than chroma planes mixed by color_rows, eSR-MAX_s2
 * and s3 RGB; so only Bicubic ids take this pass.) */
static inline __attribute__((always_inline)) void sep_color_t(const int s, const int otype,
                                                              const int K, const job_t *j,
                                                              float *const *pad, float *tmp, int img,
                                                              int y0, int rows) {
  const filt_t *m = sep_filter(j);
  const int w = j->w, ow = w * s, nv = sep_vectors(j, m);
  const long ldp = m->ldp;
  const size_t esize = type_size(otype), stride = (size_t)nv * VW;
  mix_t c;
  mix_init(j, K, &c);
  taps4_t vt, ht;
  taps4_coefs(m->vert, m->kh, m->vlo, s, &vt), taps4_coefs(m->horz, m->kw, m->hlo, s, &ht);
  for (int y = 0; y < rows; y++) {
    for (int p = 0; p < K; p++)
      vert_pass4(m, &vt, s, pad[p] + (size_t)y * ldp, nv, tmp + p * s * stride, stride);
    for (int r = 0; r < s; r++) {
      char *orow = (char *)j->out.ptr +
                   esize * ((size_t)img * j->out.plane + (size_t)((y0 + y) * s + r) * j->out.row);
      if (y + 1 < rows || r + 1 < s) prefetch_bytes(orow + esize * j->out.row, esize * (size_t)ow * K, 1);
      for (int x = 0; x < w; x += VW) {
        vf o[MAXP][4];
        for (int p = 0; p < K; p++) {
          vf v[4];
          horz4(m, &ht, s, tmp + (p * s + r) * stride + x, v);
          if (!zip_phases(j, v, s, o[p])) { /* no vector shuffle: interleave through memory */
            float lanes[4][VW], hr[4 * VW];
            for (int q = 0; q < s; q++) storeu(lanes[q], v[q]);
            for (int i = 0; i < s * VW; i++) hr[i] = lanes[i % s][i / s];
            for (int k = 0; k < s; k++) o[p][k] = loadu(hr + k * VW);
          }
        }
        for (int k = 0; k < s; k++) {
          const int hx = x * s + k * VW;
          if (hx >= ow) break;
          vf tv[MAXP];
          for (int p = 0; p < K; p++) tv[p] = o[p][k];
          mix_store(otype, K, j, &c, tv, orow + esize * (size_t)hx * j->out.pixel,
                    ow - hx < VW ? ow - hx : VW);
        }
      }
    }
  }
}

static void sep_color(const job_t *j, float *const *pad, float *tmp, int img, int y0, int rows) {
#define SC(sc, t, k) sep_color_t(sc, t, k, j, pad, tmp, img, y0, rows)
#define BY_SCALE(t, k)                 \
  switch (j->s) {                      \
    case 2: SC(2, t, k); break;        \
    case 3: SC(3, t, k); break;        \
    default: SC(4, t, k); break;       \
  }
#define BY_K(t)                        \
  if (j->outs == 3) {                  \
    BY_SCALE(t, 3)                     \
  } else {                             \
    BY_SCALE(t, 4)                     \
  }
  if (j->out.type == T_U8) {
    BY_K(T_U8)
  } else {
    BY_K(T_U16)
  }
#undef BY_K
#undef BY_SCALE
#undef SC
}

static void run_strip(job_t *j, int img, int strip, scratch_t *sc) {
  const int y0 = strip * SH;
  const int rows = (y0 + SH < j->h ? y0 + SH : j->h) - y0;
  if (!j->color) {
    const size_t esize = type_size(j->out.type);
    char *dst = (char *)j->out.ptr + esize * ((size_t)img * j->out.plane + (size_t)y0 * j->s * j->out.row);
    const filt_t *f = &j->model;
    const float coef[1][MAXP] = {{j->in_coef}};
    fill_strips(j, 1, &f, &j->border, coef, &j->in_offset, img, y0, sc->pad, sc->dummy);
    run_filter(j, &j->model, &j->omap, j->out.type, sc->pad[0], sc->buf, rows, dst, j->out.row);
    return;
  }
  static const omap_t identity = {1.0f, 0.0f, 0.0f, 0.0f};
  const filt_t *f[MAXP];
  int border[MAXP], np = 0, which[MAXP];
  float coef[MAXP][MAXP], offset[MAXP], *pad[MAXP];
  for (int p = 0; p < j->planes; p++) {
    if (j->kind[p] == 2) continue;
    f[np] = j->kind[p] == 0 ? &j->model : &j->chroma;
    border[np] = j->kind[p] == 0 ? j->border : 1;
    memcpy(coef[np], j->coef[p], sizeof coef[np]);
    offset[np] = j->offset[p], pad[np] = sc->pad[np], which[np] = p;
    np++;
  }
  if (np) fill_strips(j, np, f, border, (const float (*)[MAXP])coef, offset, img, y0, pad, sc->dummy);
  if (j->sep_color) {
    sep_color(j, pad, sc->buf, img, y0, rows);
    return;
  }
  for (int i = 0; i < np; i++)
    run_filter(j, f[i], &identity, T_F32, pad[i], sc->buf, rows, (char *)sc->plane[which[i]],
               (long)j->w * j->s);
  color_rows(j, img, y0, rows, sc);
}

static size_t pad_floats(const filt_t *m) { return (size_t)(SH + m->kh - 1) * m->ldp + VW; }

static size_t buf_floats(const job_t *j, const filt_t *m) {
  const size_t group = m->weight ? (size_t)m->group_rows * j->s * m->f * m->c * TW : 0;
  const size_t tmp = m->weight ? 0 : (size_t)j->s * sep_vectors(j, m) * VW; /* strip_sep's rows */
  return group > tmp ? group : tmp;
}

/* At least one cache line, so that a zero-sized buffer is still a valid allocation. */
static float *alloc_floats(size_t n) { return (float *)aligned_alloc(64, (n * 4 / 64 + 1) * 64); }

static void work_on(job_t *j) {
  /* Strip buffers sized for the filters this job prepared (taps set): the model, the chroma
   * bicubic, or neither (a colour job whose planes all come precomputed). */
  size_t pad_n = 0, buf_n = 0;
  const filt_t *filters[2] = {&j->model, &j->chroma};
  for (int i = 0; i < 2; i++) {
    if (!filters[i]->taps) continue;
    if (pad_floats(filters[i]) > pad_n) pad_n = pad_floats(filters[i]);
    if (buf_floats(j, filters[i]) > buf_n) buf_n = buf_floats(j, filters[i]);
  }
  if (j->sep_color) { /* the vertical passes of every plane (see sep_color_t) */
    const size_t rows = (size_t)j->planes * j->s * sep_vectors(j, sep_filter(j)) * VW;
    if (rows > buf_n) buf_n = rows;
  }
  const int npads = j->color ? j->planes : 1;
  scratch_t sc;
  memset(&sc, 0, sizeof sc);
  sc.buf = alloc_floats(buf_n);
  sc.dummy = alloc_floats((size_t)j->w + VW);
  int ok = sc.buf && sc.dummy;
  for (int p = 0; p < npads; p++) ok = ok && (sc.pad[p] = alloc_floats(pad_n));
  if (j->color && !j->sep_color)
    for (int p = 0; p < j->planes; p++)
      if (j->kind[p] != 2)
        ok = ok && (sc.plane[p] = alloc_floats((size_t)SH * j->s * j->w * j->s + VW));
  if (!ok) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_SEQ_CST);
  } else {
    const int total = j->n * j->strips;
    for (;;) {
      const int task = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
      if (task >= total) break;
      run_strip(j, task / j->strips, task % j->strips, &sc);
    }
  }
  free(sc.buf);
  free(sc.dummy);
  for (int p = 0; p < MAXP; p++) free(sc.pad[p]), free(sc.plane[p]);
}

/* A persistent thread pool. The calling thread works too and waits only for threads that took
 * part: on a loaded machine a worker that is not scheduled in time is simply not waited for
 * (pthread_create + join per call measured 2-3x slower medians on this 2-core box under load). */
static struct {
  pthread_mutex_t mu, submit;
  pthread_cond_t wake, done;
  job_t *job;
  unsigned gen;
  int threads;
  int atfork;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0};

/* A short busy-wait before sleeping on a condition variable: in a loop of calls (a folder of
 * photos, the planes of one frame) the next job usually comes within it, and waking a sleeping
 * thread costs tens of microseconds (an IPI on a VM): Bicubic_s2 and eSR-MAX_s2_K3_C2 RGB calls
 * in a loop measured ~4% faster. SPIN_NS bounds the CPU a helper burns when no job comes (video
 * frames come every ~60 ms next to codec threads: 50 us instead of 200 left the video bench at
 * 0.82x instead of 0.78x its slower stage, within run-to-run noise). */
#define SPIN_NS 50000L

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Spin until *value differs from seen (returns 1) or SPIN_NS pass (returns 0). */
static int spin_while_equal(const unsigned *value, unsigned seen) {
  const long start = now_ns();
  for (int i = 1;; i++) {
    if (__atomic_load_n(value, __ATOMIC_ACQUIRE) != seen) return 1;
    cpu_relax();
    if (i % 64 == 0 && now_ns() - start > SPIN_NS) return 0;
  }
}

static void *pool_thread(void *arg) {
  (void)arg;
  unsigned seen = 0;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    if (pool.gen == seen) {
      pthread_mutex_unlock(&pool.mu);
      spin_while_equal(&pool.gen, seen);
      pthread_mutex_lock(&pool.mu);
    }
    while (pool.job == NULL || pool.gen == seen) pthread_cond_wait(&pool.wake, &pool.mu);
    seen = pool.gen;
    job_t *j = pool.job;
    if (__atomic_sub_fetch(&j->slots, 1, __ATOMIC_SEQ_CST) < 0) continue;
    j->refs++;
    pthread_mutex_unlock(&pool.mu);
    work_on(j);
    pthread_mutex_lock(&pool.mu);
    if (--j->refs == 0) pthread_cond_broadcast(&pool.done);
  }
  return NULL;
}

static void pool_after_fork(void) {
  /* Only the forking thread exists in the child: start from an empty pool. */
  pthread_mutex_init(&pool.mu, NULL);
  pthread_mutex_init(&pool.submit, NULL);
  pthread_cond_init(&pool.wake, NULL);
  pthread_cond_init(&pool.done, NULL);
  pool.job = NULL;
  pool.threads = 0;
}

/* Runs j on up to nthreads threads (the caller included). */
static void run_parallel(job_t *j, int nthreads) {
  if (nthreads <= 1 || pthread_mutex_trylock(&pool.submit) != 0) {
    work_on(j); /* single-threaded, or another call is using the pool right now */
    return;
  }
  pthread_mutex_lock(&pool.mu);
  if (!pool.atfork) pool.atfork = pthread_atfork(NULL, NULL, pool_after_fork) == 0;
  while (pool.threads < nthreads - 1) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, pool_thread, NULL) != 0) break;
    pthread_detach(thread);
    pool.threads++;
  }
  j->slots = nthreads - 1;
  j->refs = 0;
  pool.job = j;
  __atomic_store_n(&pool.gen, pool.gen + 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);
  work_on(j);
  pthread_mutex_lock(&pool.mu);
  pool.job = NULL; /* no new helpers; wait for those still finishing a strip */
  while (j->refs > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  pthread_mutex_unlock(&pool.submit);
}

/* ---- Public entry points (called through ctypes; see engine/native.py). ---- */

/* A filter as the caller gives it: weight in the model's channel order (k*C + c)*s*s + phase,
 * or (weight NULL) separable phase filters vert (s, kh) and horz (s, kw). */
typedef struct {
  const float *weight, *vert, *horz;
  int kh, kw, pad_top, pad_left, c, mode;
} filter_in_t;

/* The colour pipeline as the caller gives it (see the job_t fields of the same names). */
typedef struct {
  int planes, outs, kind[MAXP];
  float coef[MAXP][MAXP], offset[MAXP], mat[MAXP][MAXP], ooff[MAXP], peak;
} color_in_t;

static int valid_buf(const buf_t *b, int n, int h, int w, int channels) {
  return b && b->ptr && b->type >= T_F32 && b->type <= T_U16 && b->pixel >= channels &&
         (b->pixel == 1 || b->pixel == 3 || b->pixel == 4) && b->row >= (long)w * b->pixel && (n <= 1 || b->plane >= b->row * h);
}

/* Checks fi and fills m (weights reordered phase-major, tap offsets); 0, 1 bad, 2 no memory. */
static int prepare_filter(const filter_in_t *fi, int s, int w, filt_t *m) {
  static const int factors[3] = {1, 2, 3};
  memset(m, 0, sizeof *m);
  if (!fi || fi->kh < 1 || fi->kw < 1 || fi->pad_top < 0 || fi->pad_top >= fi->kh ||
      fi->pad_left < 0 || fi->pad_left >= fi->kw || fi->c < 1 || fi->mode < 0 || fi->mode > 2 ||
      (!fi->weight && (!fi->vert || !fi->horz || fi->mode != 0 || fi->c != 1)))
    return 1;
  const int kh = fi->kh, kw = fi->kw, c = fi->c, ntaps = kh * kw;
  m->kh = kh, m->kw = kw, m->pad_top = fi->pad_top, m->pad_left = fi->pad_left;
  m->c = c, m->f = factors[fi->mode], m->mode = fi->mode;
  m->vert = fi->vert, m->horz = fi->horz;
  /* Keep a tile's channels within ~96 rows (L1) unless one row phase alone needs more. */
  m->group_rows = 96 / (s * m->f * c);
  if (m->group_rows < 1) m->group_rows = 1;
  if (m->group_rows > s) m->group_rows = s;
  /* a multiple of VW: every row of the strip starts on a vector boundary (aligned loads) */
  m->ldp = (((w + TW - 1) / TW) * TW + kw - 1 + VW + VW - 1) / VW * VW;
  m->taps = (int *)malloc(sizeof(int) * ntaps);
  if (!m->taps) return 2;
  for (int ky = 0; ky < kh; ky++)
    for (int kx = 0; kx < kw; kx++) m->taps[ky * kw + kx] = ky * m->ldp + kx;
  if (!fi->weight) {
    for (int r = 0; r < s; r++) {
      m->vlo[r] = 0, m->vhi[r] = kh, m->hlo[r] = 0, m->hhi[r] = kw;
      while (m->vlo[r] < kh - 1 && fi->vert[r * kh + m->vlo[r]] == 0.0f) m->vlo[r]++;
      while (m->vhi[r] > m->vlo[r] + 1 && fi->vert[r * kh + m->vhi[r] - 1] == 0.0f) m->vhi[r]--;
      while (m->hlo[r] < kw - 1 && fi->horz[r * kw + m->hlo[r]] == 0.0f) m->hlo[r]++;
      while (m->hhi[r] > m->hlo[r] + 1 && fi->horz[r * kw + m->hhi[r] - 1] == 0.0f) m->hhi[r]--;
    }
    /* Bicubic: every phase has at most 4 non-zero taps; a fixed count of 4 (zeros included)
     * lets the tap loops unroll (measured 1.6x faster on Full-HD chroma). */
    m->taps4 = kh >= 4 && kw >= 4;
    for (int r = 0; r < s; r++) {
      m->taps4 = m->taps4 && m->vhi[r] - m->vlo[r] <= 4 && m->hhi[r] - m->hlo[r] <= 4;
    }
    for (int r = 0; m->taps4 && r < s; r++) {
      if (m->vlo[r] > kh - 4) m->vlo[r] = kh - 4;
      if (m->hlo[r] > kw - 4) m->hlo[r] = kw - 4;
    }
    /* the shared window: phase r at vlo[0] + TAPS4_SHIFT, all 5 taps inside the filter */
    for (int r = 0; m->taps4 && r < s; r++) {
      const int shift = TAPS4_SHIFT(r, s);
      if (m->vlo[r] != m->vlo[0] + shift || m->hlo[r] != m->hlo[0] + shift || m->vlo[0] + 5 > kh ||
          m->hlo[0] + 5 > kw)
        m->taps4 = 0;
    }
    return 0;
  }
  const int cout = m->f * s * s * c;
  float *wt = (float *)malloc(sizeof(float) * cout * ntaps);
  if (!wt) return 2;
  /* model order (k*C + c)*s*s + phase  ->  phase-major (phase*F + k)*C + c */
  for (int ph = 0; ph < s * s; ph++)
    for (int k = 0; k < m->f; k++)
      for (int ci = 0; ci < c; ci++)
        memcpy(wt + (size_t)((ph * m->f + k) * c + ci) * ntaps,
               fi->weight + (size_t)((k * c + ci) * s * s + ph) * ntaps, sizeof(float) * ntaps);
  m->weight = wt;
  return 0;
}

static void release_filter(filt_t *m) {
  free(m->taps);
  free((void *)m->weight);
  free(m->gtaps), free(m->qweight), free(m->qscale), free(m->qsum);
  m->taps = NULL, m->weight = NULL, m->gtaps = NULL, m->qweight = NULL, m->qscale = NULL, m->qsum = NULL;
}

/* bf16 bits of f, rounded to nearest even (f finite). */
static uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static float bf16_value(uint16_t b) {
  const uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Packs a prepared model filter's weights for precision prec on the input grid (g0, gs):
 * 0, 1 when this build has no such variant (or the filter is separable), 2 no memory. */
static int prepare_precision(filt_t *m, int prec, int s, float g0, float gs) {
  if (!prec) return 0;
  if (!(edgesr_precisions() & (1 << prec)) || !m->weight) return 1;
  const int kh = m->kh, kw = m->kw, ntaps = kh * kw, gsz = group_taps(prec);
  const int per_row = (kw + gsz - 1) / gsz, ng = kh * per_row, cout = m->f * s * s * m->c;
  m->prec = prec, m->ngroups = ng, m->g0 = g0, m->gs = gs > 0.0f ? gs : 1.0f / 255.0f;
  m->gtaps = (int *)malloc(sizeof(int) * ng);
  m->qweight = malloc((size_t)cout * ng * (prec == P_FP16 ? 2 : 4));
  m->qscale = (float *)malloc(sizeof(float) * cout);
  m->qsum = (float *)malloc(sizeof(float) * cout);
  if (!m->gtaps || !m->qweight || !m->qscale || !m->qsum) return 2;
  for (int ky = 0; ky < kh; ky++)
    for (int g = 0; g < per_row; g++)
      m->gtaps[ky * per_row + g] = ky * m->ldp * 4 + g * gsz * packed_size(prec);
  for (int ch = 0; ch < cout; ch++) {
    const float *w = m->weight + (size_t)ch * ntaps;
    float peak = 0.0f, sum = 0.0f;
    for (int t = 0; t < ntaps; t++) peak = fabsf(w[t]) > peak ? fabsf(w[t]) : peak;
    const float scale = prec == P_INT8 && peak > 0.0f ? peak / 127.0f : 1.0f;
    for (int ky = 0; ky < kh; ky++)
      for (int g = 0; g < per_row; g++) {
        const size_t at = (size_t)ch * ng + ky * per_row + g;
        uint32_t packed = 0;
        for (int k = 0; k < gsz; k++) {
          const int kx = g * gsz + k;
          const float v = kx < kw ? w[ky * kw + kx] : 0.0f;
          if (prec == P_BF16) {
            packed |= (uint32_t)bf16_bits(v) << (16 * k);
            sum += bf16_value(bf16_bits(v));
          } else if (prec == P_INT8) {
            const int q = (int)rintf(v / scale);
            packed |= (uint32_t)(uint8_t)(int8_t)(q > 127 ? 127 : (q < -127 ? -127 : q)) << (8 * k);
            sum += (float)(q > 127 ? 127 : (q < -127 ? -127 : q)) * scale;
          } else {
#if defined(HAVE_FP16)
            ((_Float16 *)m->qweight)[at] = (_Float16)v;
            sum += (float)(_Float16)v;
#endif
          }
        }
        if (prec != P_FP16) ((uint32_t *)m->qweight)[at] = packed;
      }
    m->qscale[ch] = scale, m->qsum[ch] = sum;
  }
  return 0;
}

static void init_job(job_t *j, int n, int h, int w, int s, int border) {
  memset(j, 0, sizeof *j);
  j->n = n, j->h = h, j->w = w, j->s = s, j->border = border != 0;
  j->strips = (h + SH - 1) / SH;
  for (int i = 0; i < VW; i++) {
    j->zip_lo[i] = i / 2 + (i % 2) * VW;
    j->zip_hi[i] = VW / 2 + i / 2 + (i % 2) * VW;
    for (int k = 0; k < 3; k++) {
      const int g = k * VW + i, x = g / 3, q = g % 3;
      j->mix3a[k][i] = q == 0 ? x : (q == 1 ? VW + x : 0);
      j->mix3b[k][i] = q == 2 ? VW + x : i;
    }
  }
  for (int i = 0; i < 4 * VW; i++) {
    const int x3 = i / 3, k3 = i % 3, x4 = i / 4, k4 = i % 4;
    j->ileave3_b[i] = j->ileave3_h[i] = (uint8_t)(i < 3 * VW ? k3 * VW + x3 : i);
    j->ileave4_b[i] = j->ileave4_h[i] = (uint8_t)(k4 * VW + x4);
    for (int K = 3; K <= 4; K++) {
      const int x = i / K, k = i % K, in = i < K * VW;
      j->packed_b[K - 3][i] = (uint8_t)(in ? (x / 4) * 16 + k * 4 + x % 4 : 0);
      j->packed_w[K - 3][i / (2 * VW)][i % (2 * VW)] =
          (uint16_t)(in ? (k / 2) * 2 * VW + (x / 4) * 8 + (k % 2) * 4 + x % 4 : 0);
    }
  }
}

/* Multiply-adds per LR pixel of a filter (for the threading decision). */
static double filter_work(const filt_t *m, int s) {
  return m->weight ? (double)m->f * s * s * m->c * m->kh * m->kw : (double)s * (m->kh + s * m->kw);
}

static int run_threads(job_t *j, double work, int nthreads) {
  /* Small jobs run on the calling thread: waking a helper costs tens of microseconds, and on a
   * loaded machine a woken helper that holds a strip can delay the whole call by milliseconds. */
  const int total = j->n * j->strips;
  if (work < 4e6) nthreads = 1;
  if (nthreads > total / 2) nthreads = total / 2;
  if (nthreads < 1) nthreads = 1;
  run_parallel(j, nthreads);
  return j->failed ? 2 : 0;
}

/* One plane per image through a model (or separable filter): in (n, h, w) of any type, strided,
 * enters as x*in_coef + in_offset; out (n, s*h, s*w) leaves as o*scale + offset (integers
 * clamped to lo..hi and rounded half to even). border 0: zero padding (the model's own), 1: the
 * nearest edge pixel. Returns 0, 1 on bad arguments, 2 when memory could not be had. */
int edgesr_plane_p(const buf_t *in, const buf_t *out, int n, int h, int w, int s, int border,
                   const filter_in_t *model, float in_coef, float in_offset, const omap_t *om,
                   int nthreads, int precision) {
  if (n < 0 || h < 1 || w < 1 || s < 2 || s > 4 || !om || !valid_buf(in, n, h, w, 1) ||
      !valid_buf(out, n, h * s, w * s, 1) || out->pixel != 1)
    return 1;
  if (n == 0) return 0;
  job_t j;
  init_job(&j, n, h, w, s, border);
  j.in = *in, j.out = *out, j.in_coef = in_coef, j.in_offset = in_offset, j.omap = *om;
  int code = prepare_filter(model, s, w, &j.model);
  /* the packed input grid: the integers of 8-bit input exactly; 256 levels of 0..1 otherwise */
  const float gs = in->type == T_U8 ? in_coef : (in->type == T_U16 ? in_coef * 257.0f : 1.0f / 255.0f);
  if (code == 0) code = prepare_precision(&j.model, precision, s, in->type == T_F32 ? 0.0f : in_offset, gs);
  if (code == 0) code = run_threads(&j, (double)n * h * w * filter_work(&j.model, s), nthreads);
  release_filter(&j.model);
  return code;
}

/* edgesr_plane in fp32. */
int edgesr_plane(const buf_t *in, const buf_t *out, int n, int h, int w, int s, int border,
                 const filter_in_t *model, float in_coef, float in_offset, const omap_t *om,
                 int nthreads) {
  return edgesr_plane_p(in, out, n, h, w, s, border, model, in_coef, in_offset, om, nthreads, P_F32);
}

static int setup_color(job_t *j, const color_in_t *ci, int in_pixel) {
  if (!ci || ci->planes < 1 || ci->planes > MAXP || ci->outs != ci->planes) return 1;
  j->color = 1, j->planes = ci->planes, j->outs = ci->outs, j->peak = ci->peak;
  for (int p = 0; p < ci->planes; p++) {
    if (ci->kind[p] < 0 || ci->kind[p] > 2) return 1;
    j->kind[p] = ci->kind[p], j->offset[p] = ci->offset[p];
    j->npre += ci->kind[p] == 2;
    for (int k = 0; k < MAXP; k++) j->coef[p][k] = k < in_pixel ? ci->coef[p][k] : 0.0f;
  }
  for (int k = 0; k < ci->outs; k++) {
    j->ooff[k] = ci->ooff[k];
    for (int p = 0; p < MAXP; p++) j->mat[k][p] = p < ci->planes ? ci->mat[k][p] : 0.0f;
  }
  return 0;
}

/* Same separable 4-tap filter (geometry and taps)? */
static int same_sep(const filt_t *a, const filt_t *b, int s) {
  if (a->weight || b->weight || !a->taps4 || !b->taps4 || a->kh != b->kh || a->kw != b->kw ||
      a->pad_top != b->pad_top || a->pad_left != b->pad_left)
    return 0;
  for (int r = 0; r < s; r++)
    if (a->vlo[r] != b->vlo[r] || a->hlo[r] != b->hlo[r]) return 0;
  return memcmp(a->vert, b->vert, sizeof(float) * s * a->kh) == 0 &&
         memcmp(a->horz, b->horz, sizeof(float) * s * a->kw) == 0;
}

/* Whether a colour job can run sep_color: 3 or 4 planes and outputs, none precomputed, and the
 * model (when used) the same 4-tap separable filter as the chroma bicubic (Bicubic ids, fp32). */
static int fits_sep_color(const job_t *j, const int *uses) {
  if (uses[2] || j->outs != j->planes || (j->outs != 3 && j->outs != 4) || j->model.prec) return 0;
  const filt_t *m = sep_filter(j);
  if (m->weight || !m->taps4) return 0;
  return !(uses[0] && uses[1]) || same_sep(&j->model, &j->chroma, j->s);
}

/* The colour pipeline: an interleaved image in (n, h, w, in->pixel) uint8/uint16/float, out
 * (n, s*h, s*w, out->pixel) uint8/uint16, in one pass over strips of LR rows: each plane of
 * `color` is read from the input pixels, filtered by the model (border as given), the chroma
 * bicubic (replicated edges) or taken from pre ((n, npre, s*h, s*w) float32 model outputs,
 * computed elsewhere), and the output channels are mixed from the planes, rounded half to even
 * and clamped to 0..peak. model may be NULL when no plane is of kind 0. */
int edgesr_color_p(const buf_t *in, const buf_t *out, int n, int h, int w, int s, int border,
                   const filter_in_t *model, const filter_in_t *chroma, const color_in_t *color,
                   const float *pre, int nthreads, int precision) {
  if (n < 0 || h < 1 || w < 1 || s < 2 || s > 4 || !valid_buf(in, n, h, w, 1) || !color ||
      !valid_buf(out, n, h * s, w * s, color->outs) || out->type == T_F32)
    return 1;
  if (n == 0) return 0;
  job_t j;
  init_job(&j, n, h, w, s, border);
  j.in = *in, j.out = *out, j.pre = pre;
  int code = setup_color(&j, color, in->pixel);
  int uses[3] = {0, 0, 0};
  for (int p = 0; code == 0 && p < j.planes; p++) uses[j.kind[p]]++;
  if (code == 0 && ((uses[0] && !model) || (uses[1] && !chroma) || (uses[2] && !pre))) code = 1;
  if (code == 0 && uses[0]) code = prepare_filter(model, s, w, &j.model);
  /* model planes hold 0..1 values (luma or a channel): packed on 256 levels of 0..1 */
  if (code == 0 && uses[0]) code = prepare_precision(&j.model, precision, s, 0.0f, 1.0f / 255.0f);
  if (code == 0 && uses[1]) code = prepare_filter(chroma, s, w, &j.chroma);
  if (code == 0) j.sep_color = fits_sep_color(&j, uses);
  if (code == 0) {
    double work = (double)n * h * w * (uses[0] * filter_work(&j.model, s) +
                                       uses[1] * filter_work(&j.chroma, s) + j.outs * s * s * 4.0);
    code = run_threads(&j, work, nthreads);
  }
  if (uses[0]) release_filter(&j.model);
  if (uses[1]) release_filter(&j.chroma);
  return code;
}

/* edgesr_color in fp32. */
int edgesr_color(const buf_t *in, const buf_t *out, int n, int h, int w, int s, int border,
                 const filter_in_t *model, const filter_in_t *chroma, const color_in_t *color,
                 const float *pre, int nthreads) {
  return edgesr_color_p(in, out, n, h, w, s, border, model, chroma, color, pre, nthreads, P_F32);
}

/* The planes of kind 2 of `color` (the model inputs computed elsewhere), as float32
 * (n, npre, h, w): plane p = sum_k coef[p][k] in[k] + offset[p]. */
int edgesr_read_planes(const buf_t *in, int n, int h, int w, const color_in_t *color, float *out) {
  if (n < 0 || h < 1 || w < 1 || !valid_buf(in, n, h, w, 1) || !out) return 1;
  job_t j;
  init_job(&j, n, h, w, 2, 0);
  j.in = *in;
  if (setup_color(&j, color, in->pixel)) return 1;
  const size_t esize = type_size(in->type);
  float coef[MAXP][MAXP], offset[MAXP];
  int np = 0;
  for (int p = 0; p < j.planes; p++)
    if (j.kind[p] == 2) memcpy(coef[np], j.coef[p], sizeof coef[np]), offset[np++] = j.offset[p];
  if (np == 0) return 0;
  for (int img = 0; img < n; img++)
    for (int y = 0; y < h; y++) {
      float *dst[MAXP];
      for (int p = 0; p < np; p++) dst[p] = out + (((size_t)img * np + p) * h + y) * w;
      read_rows(in, (const char *)in->ptr + esize * ((size_t)img * in->plane + (size_t)y * in->row), np,
                (const float (*)[MAXP])coef, offset, dst, w);
    }
  return 0;
}
