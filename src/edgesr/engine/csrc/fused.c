/* Fused one-layer super-resolution kernel: conv (1 -> F*s*s*C channels), PixelShuffle and the
 * per-pixel reduction (max / softmax-weighted sum) computed tile by tile, so the F*s*s*C channel
 * tensor never leaves L1 (the PyTorch reference writes and re-reads it through memory).
 *
 * Layout: input (N, H, W) float32 or uint8, output (N, sH, sW) float32 or uint8, row-major.
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
#define SH 8         /* LR rows per strip (unit of work for a thread) */

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef uint8_t vu8 __attribute__((vector_size(VW)));
typedef uint8_t vu8u __attribute__((vector_size(VW), aligned(1), may_alias));

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

/* exp(x) for x <= 0 (softmax after subtracting the max); Cephes expf polynomial, ~1 ulp. */
static inline vf vexp_nonpos(vf x) {
  x = vmax(x, splat(-87.0f));
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
}

typedef struct {
  const void *in;
  int in_u8;
  float in_scale, in_offset;
  void *out;
  int out_u8;
  float out_scale, out_offset;
  int n, h, w;
  const float *weight;     /* phase-major: ((r*s + q) * F + k) * C + c rows of KH*KW taps */
  int kh, kw, pad_top, pad_left;
  int s, c, f, mode, cout;
  int group_rows;          /* output row phases whose channels are computed per tile together */
  int ldp;                 /* padded strip row length */
  int strips;              /* strips per image */
  int *taps;               /* offsets of the KH*KW taps in the padded strip */
  vi zip_lo, zip_hi;       /* shuffle masks interleaving two vectors */
  vi mix3a[3], mix3b[3];   /* two-step shuffle masks interleaving three vectors */
  const float *vert, *horz; /* separable path: (s, kh) and (s, kw) 1-D phase filters, else NULL */
  int next;                /* next task (atomic) */
  int failed;              /* set when a thread could not allocate its buffers */
  int slots;               /* pool threads that may still join (atomic) */
  int refs;                /* pool threads working on it (under pool.mu) */
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
static void conv_tile(const job_t *j, const float *src, int c_begin, int c_end, float *buf) {
  const int ntaps = j->kh * j->kw;
  const int *taps = j->taps;
  const int total = c_end - c_begin, blocks = (total + CB - 1) / CB;
  for (int b = 0, c0 = 0; b < blocks; b++) {
    const int cb = (total - c0) / (blocks - b);
    const float *w = j->weight + (size_t)(c_begin + c0) * ntaps;
    float *dst = buf + (size_t)c0 * TW;
    switch (cb) {
      BLOCK_CASE(1) BLOCK_CASE(2) BLOCK_CASE(3) BLOCK_CASE(4)
#if CB >= 6
      BLOCK_CASE(5) BLOCK_CASE(6)
#endif
#if CB >= 8
      BLOCK_CASE(7) BLOCK_CASE(8)
#endif
#if CB >= 12
      BLOCK_CASE(9) BLOCK_CASE(10) BLOCK_CASE(11) BLOCK_CASE(12)
#endif
      default: break;
    }
    c0 += cb;
  }
}

static void fill_strip(const job_t *j, int img, int y0, float *pad) {
  const int rows = SH + j->kh - 1;
  const size_t plane = (size_t)j->h * j->w;
  const float a = j->in_scale, b = j->in_offset;
  for (int py = 0; py < rows; py++) {
    float *dst = pad + (size_t)py * j->ldp;
    const int iy = y0 + py - j->pad_top;
    if (iy < 0 || iy >= j->h) {
      memset(dst, 0, sizeof(float) * j->ldp);
      continue;
    }
    memset(dst, 0, sizeof(float) * j->pad_left);
    float *row = dst + j->pad_left;
    if (j->in_u8) {
      const uint8_t *src = (const uint8_t *)j->in + img * plane + (size_t)iy * j->w;
      for (int x = 0; x < j->w; x++) row[x] = (float)src[x] * a + b;
    } else {
      const float *src = (const float *)j->in + img * plane + (size_t)iy * j->w;
      if (a == 1.0f && b == 0.0f)
        memcpy(row, src, sizeof(float) * j->w);
      else
        for (int x = 0; x < j->w; x++) row[x] = src[x] * a + b;
    }
    memset(row + j->w, 0, sizeof(float) * (j->ldp - j->pad_left - j->w));
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

/* Affine map, then interleave s phase vectors v[q][i] to out[i*s + q] (count LR pixels). */
static inline __attribute__((always_inline)) void store_phases(const job_t *j, vf *v, const int s,
                                                               const int out_u8, void *out_row,
                                                               int count) {
  const float a = j->out_scale, b = j->out_offset;
  for (int q = 0; q < s; q++) v[q] = v[q] * a + b;
  vf o[4];
  int full = count >= VW;
#if defined(__GNUC__) && !defined(__clang__)
  if (full && s == 2) {
    o[0] = __builtin_shuffle(v[0], v[1], j->zip_lo);
    o[1] = __builtin_shuffle(v[0], v[1], j->zip_hi);
  } else if (full && s == 4) {
    vf t0 = __builtin_shuffle(v[0], v[2], j->zip_lo), t1 = __builtin_shuffle(v[0], v[2], j->zip_hi);
    vf t2 = __builtin_shuffle(v[1], v[3], j->zip_lo), t3 = __builtin_shuffle(v[1], v[3], j->zip_hi);
    o[0] = __builtin_shuffle(t0, t2, j->zip_lo), o[1] = __builtin_shuffle(t0, t2, j->zip_hi);
    o[2] = __builtin_shuffle(t1, t3, j->zip_lo), o[3] = __builtin_shuffle(t1, t3, j->zip_hi);
  } else if (full && s == 3) {
    for (int k = 0; k < 3; k++)
      o[k] = __builtin_shuffle(__builtin_shuffle(v[0], v[1], j->mix3a[k]), v[2], j->mix3b[k]);
  } else
#endif
  {
    full = 0;
  }
  if (full) {
    if (out_u8) {
      for (int k = 0; k < s; k++) {
        vf c = vmin(vmax(o[k], splat(0.0f)), splat(255.0f));
        *(vu8u *)((uint8_t *)out_row + k * VW) = __builtin_convertvector(vrint(c), vu8);
      }
    } else {
      for (int k = 0; k < s; k++) storeu((float *)out_row + k * VW, o[k]);
    }
    return;
  }
  float tmp[4][VW];
  for (int q = 0; q < s; q++) storeu(tmp[q], v[q]);
  if (out_u8) {
    uint8_t *r = (uint8_t *)out_row;
    for (int x = 0; x < count; x++)
      for (int q = 0; q < s; q++) {
        float c = tmp[q][x];
        c = c < 0.0f ? 0.0f : (c > 255.0f ? 255.0f : c);
        r[x * s + q] = (uint8_t)(int)__builtin_rintf(c);
      }
  } else {
    float *r = (float *)out_row;
    for (int x = 0; x < count; x++)
      for (int q = 0; q < s; q++) r[x * s + q] = tmp[q][x];
  }
}

static inline __attribute__((always_inline)) void run_strip_mode(const int mode, const int s,
                                                                 const int out_u8, job_t *j,
                                                                 int img, int strip, float *pad,
                                                                 float *buf) {
  const int y0 = strip * SH;
  const int y1 = y0 + SH < j->h ? y0 + SH : j->h;
  const int ow = j->w * s, fc = j->f * j->c;
  const size_t out_plane = (size_t)j->h * s * ow;
  const size_t esize = out_u8 ? 1 : 4;
  fill_strip(j, img, y0, pad);
  for (int y = y0; y < y1; y++) {
    const float *src_row = pad + (size_t)(y - y0) * j->ldp;
    for (int x0 = 0; x0 < j->w; x0 += TW) {
      for (int r0 = 0; r0 < s; r0 += j->group_rows) {
        const int r1 = r0 + j->group_rows < s ? r0 + j->group_rows : s;
        conv_tile(j, src_row + x0, r0 * s * fc, r1 * s * fc, buf);
        for (int r = r0; r < r1; r++) {
          char *row = (char *)j->out + esize * (img * out_plane + (size_t)(y * s + r) * ow);
          for (int p = 0; p < PV; p++) {
            const int x = x0 + p * VW;
            if (x >= j->w) break;
            vf v[4];
            for (int q = 0; q < s; q++)
              v[q] = reduce_vec(mode, buf + (size_t)((r - r0) * s + q) * fc * TW, j->c, p * VW);
            store_phases(j, v, s, out_u8, row + esize * (size_t)x * s, j->w - x < VW ? j->w - x : VW);
          }
        }
      }
    }
  }
}

/* Separable filters (Bicubic): out[y*s + r][x*s + q] = sum_a sum_b vert[r][a] horz[q][b]
 * in[y + a][x + b]. A vertical pass per row phase into tmp, then s horizontal filters: s*kh + s*s*kw
 * multiply-adds per LR pixel instead of s*s*kh*kw. */
static inline __attribute__((always_inline)) void run_strip_sep(const int s, const int out_u8,
                                                                job_t *j, int img, int strip,
                                                                float *pad, float *tmp) {
  const int y0 = strip * SH;
  const int y1 = y0 + SH < j->h ? y0 + SH : j->h;
  const int ow = j->w * s, kh = j->kh, kw = j->kw;
  const int tv = (TW + kw - 1 + VW - 1) / VW; /* vectors of the vertical pass per tile */
  const size_t out_plane = (size_t)j->h * s * ow;
  const size_t esize = out_u8 ? 1 : 4;
  fill_strip(j, img, y0, pad);
  for (int y = y0; y < y1; y++) {
    const float *src_row = pad + (size_t)(y - y0) * j->ldp;
    for (int x0 = 0; x0 < j->w; x0 += TW) {
      for (int r = 0; r < s; r++) {
        const float *fv = j->vert + r * kh;
        for (int i = 0; i < tv; i++) {
          vf acc = splat(0.0f);
          for (int a = 0; a < kh; a++) acc += splat(fv[a]) * loadu(src_row + (size_t)a * j->ldp + x0 + i * VW);
          storeu(tmp + i * VW, acc);
        }
        char *row = (char *)j->out + esize * (img * out_plane + (size_t)(y * s + r) * ow);
        for (int p = 0; p < PV; p++) {
          const int x = x0 + p * VW;
          if (x >= j->w) break;
          vf v[4];
          for (int q = 0; q < s; q++) {
            const float *fh = j->horz + q * kw;
            vf acc = splat(0.0f);
            for (int b = 0; b < kw; b++) acc += splat(fh[b]) * loadu(tmp + p * VW + b);
            v[q] = acc;
          }
          store_phases(j, v, s, out_u8, row + esize * (size_t)x * s, j->w - x < VW ? j->w - x : VW);
        }
      }
    }
  }
}

static void run_strip(job_t *j, int img, int strip, float *pad, float *buf) {
  if (j->vert) {
#define SEP(sc, u) run_strip_sep(sc, u, j, img, strip, pad, buf)
    if (j->out_u8) {
      if (j->s == 2) SEP(2, 1); else if (j->s == 3) SEP(3, 1); else SEP(4, 1);
    } else {
      if (j->s == 2) SEP(2, 0); else if (j->s == 3) SEP(3, 0); else SEP(4, 0);
    }
#undef SEP
    return;
  }
  /* One specialisation per (mode, scale, output type): the reduction and the interleave then
   * run with constant loop counts (measured 1.3x faster on eSR-MAX_s2_K3_C2 than generic). */
#define STRIP(m, sc, u) run_strip_mode(m, sc, u, j, img, strip, pad, buf)
#define BY_SCALE(m, u)                      \
  switch (j->s) {                           \
    case 2: STRIP(m, 2, u); break;          \
    case 3: STRIP(m, 3, u); break;          \
    default: STRIP(m, 4, u); break;         \
  }
#define BY_OUT(m)          \
  if (j->out_u8) {         \
    BY_SCALE(m, 1)         \
  } else {                 \
    BY_SCALE(m, 0)         \
  }
  switch (j->mode) {
    case 0: BY_OUT(0) break;
    case 1: BY_OUT(1) break;
    default: BY_OUT(2) break;
  }
#undef BY_OUT
#undef BY_SCALE
#undef STRIP
}

static void work_on(job_t *j) {
  const size_t pad_n = (size_t)(SH + j->kh - 1) * j->ldp + VW;
  const size_t group = (size_t)j->group_rows * j->s * j->f * j->c;
  const size_t tmp_n = (size_t)(TW + j->kw + 2 * VW);
  const size_t buf_n = group * TW > tmp_n ? group * TW : tmp_n;
  float *pad = (float *)aligned_alloc(64, ((pad_n * 4 + 63) / 64) * 64);
  float *buf = (float *)aligned_alloc(64, ((buf_n * 4 + 63) / 64) * 64);
  if (!pad || !buf) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_SEQ_CST);
  } else {
    const int total = j->n * j->strips;
    for (;;) {
      const int task = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
      if (task >= total) break;
      run_strip(j, task / j->strips, task % j->strips, pad, buf);
    }
  }
  free(pad);
  free(buf);
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

static void *pool_thread(void *arg) {
  (void)arg;
  unsigned seen = 0;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
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
  pool.gen++;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);
  work_on(j);
  pthread_mutex_lock(&pool.mu);
  pool.job = NULL; /* no new helpers; wait for those still finishing a strip */
  while (j->refs > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  pthread_mutex_unlock(&pool.submit);
}

/* Runs the fused model on n images. Input x (n, h, w) float32 or uint8 enters as x*in_scale +
 * in_offset; output o (n, s*h, s*w) leaves as o*out_scale + out_offset (uint8: clamped to 0..255
 * and rounded). weight (F*s*s*C, kh, kw) in the model's channel order; mode 0 max (F=1),
 * 1 softmax(key)-weighted values (F=2), 2 softmax(query*key) (F=3).
 * Returns 0 on success, 1 on bad arguments, 2 when memory could not be had. */
static int run_job(const void *in, int in_u8, float in_scale, float in_offset, void *out, int out_u8,
                   float out_scale, float out_offset, int n, int h, int w, const float *weight,
                   const float *vert, const float *horz, int kh, int kw, int pad_top, int pad_left,
                   int s, int c, int mode, int nthreads) {
  static const int factors[3] = {1, 2, 3};
  if (n < 0 || h < 1 || w < 1 || kh < 1 || kw < 1 || s < 2 || s > 4 || c < 1 || mode < 0 ||
      mode > 2 || pad_top < 0 || pad_top >= kh || pad_left < 0 || pad_left >= kw)
    return 1;
  if (n == 0) return 0;
  job_t j;
  memset(&j, 0, sizeof j);
  j.in = in, j.in_u8 = in_u8, j.in_scale = in_scale, j.in_offset = in_offset;
  j.out = out, j.out_u8 = out_u8, j.out_scale = out_scale, j.out_offset = out_offset;
  j.n = n, j.h = h, j.w = w;
  j.kh = kh, j.kw = kw, j.pad_top = pad_top, j.pad_left = pad_left;
  j.vert = vert, j.horz = horz;
  j.s = s, j.c = c, j.f = factors[mode], j.mode = mode, j.cout = j.f * s * s * c;
  const int fc = j.f * c, ntaps = kh * kw;
  /* Keep a tile's channels within ~96 rows (L1) unless one row phase alone needs more. */
  j.group_rows = 96 / (s * fc);
  if (j.group_rows < 1) j.group_rows = 1;
  if (j.group_rows > s) j.group_rows = s;
  j.ldp = ((w + TW - 1) / TW) * TW + kw - 1 + VW;
  j.strips = (h + SH - 1) / SH;
  for (int i = 0; i < VW; i++) {
    j.zip_lo[i] = i / 2 + (i % 2) * VW;
    j.zip_hi[i] = VW / 2 + i / 2 + (i % 2) * VW;
    for (int k = 0; k < 3; k++) {
      const int g = k * VW + i, x = g / 3, q = g % 3;
      j.mix3a[k][i] = q == 0 ? x : (q == 1 ? VW + x : 0);
      j.mix3b[k][i] = q == 2 ? VW + x : i;
    }
  }
  int *taps = (int *)malloc(sizeof(int) * ntaps);
  float *wt = (float *)malloc(sizeof(float) * j.cout * ntaps);
  if (!taps || !wt) {
    free(taps);
    free(wt);
    return 2;
  }
  for (int ky = 0; ky < kh; ky++)
    for (int kx = 0; kx < kw; kx++) taps[ky * kw + kx] = ky * j.ldp + kx;
  /* model order (k*C + c)*s*s + phase  ->  phase-major (phase*F + k)*C + c */
  for (int ph = 0; ph < s * s; ph++)
    for (int k = 0; k < j.f; k++)
      for (int ci = 0; ci < c; ci++)
        if (weight)
          memcpy(wt + (size_t)((ph * j.f + k) * c + ci) * ntaps,
                 weight + (size_t)((k * c + ci) * s * s + ph) * ntaps, sizeof(float) * ntaps);
  j.taps = taps;
  j.weight = wt;
  /* Small jobs run on the calling thread: waking a helper costs tens of microseconds, and on a
   * loaded machine a woken helper that holds a strip can delay the whole call by milliseconds. */
  const double work = (double)n * h * w * j.cout * ntaps;
  const int total = n * j.strips;
  if (work < 4e6) nthreads = 1;
  if (nthreads > total / 2) nthreads = total / 2;
  if (nthreads < 1) nthreads = 1;
  run_parallel(&j, nthreads);
  free(taps);
  free(wt);
  return j.failed ? 2 : 0;
}

int edgesr_fused(const void *in, int in_u8, float in_scale, float in_offset, void *out, int out_u8,
                 float out_scale, float out_offset, int n, int h, int w, const float *weight, int kh,
                 int kw, int pad_top, int pad_left, int s, int c, int mode, int nthreads) {
  if (!weight) return 1;
  return run_job(in, in_u8, in_scale, in_offset, out, out_u8, out_scale, out_offset, n, h, w, weight,
                 NULL, NULL, kh, kw, pad_top, pad_left, s, c, mode, nthreads);
}

/* Like edgesr_fused for one output channel per phase whose (kh, kw) filters are the outer products
 * vert[r] x horz[q] (s*kh and s*kw floats): Bicubic. */
int edgesr_separable(const void *in, int in_u8, float in_scale, float in_offset, void *out,
                     int out_u8, float out_scale, float out_offset, int n, int h, int w,
                     const float *vert, const float *horz, int kh, int kw, int pad_top,
                     int pad_left, int s, int nthreads) {
  if (!vert || !horz) return 1;
  return run_job(in, in_u8, in_scale, in_offset, out, out_u8, out_scale, out_offset, n, h, w, NULL,
                 vert, horz, kh, kw, pad_top, pad_left, s, 1, 0, nthreads);
}
