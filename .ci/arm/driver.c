/* ARM test driver for the fused kernel: runs every case of a file written by cases.py through
 * edgesr_plane / edgesr_color and compares with the outputs the host's torch forward expects.
 * Built with the kernel in one translation unit (it includes fused.c), cross-compiled and run
 * under qemu-aarch64 by .ci/arm.sh. Exit status 0 when every case is within its tolerance.
 * With a second argument, every case's output is also appended to that file (raw, rows packed):
 * benchmarks/fp16_qemu_eval.py scores the fp16 kernel that way. */
#include <stdio.h>
#include "../../src/edgesr/engine/csrc/fused.c"

static FILE *in_file;

static void must_read(void *dst, size_t bytes) {
  if (fread(dst, 1, bytes, in_file) != bytes) {
    fprintf(stderr, "truncated case file\n");
    exit(2);
  }
}

static int read_i32(void) {
  int32_t v;
  must_read(&v, 4);
  return v;
}

static float *read_f32(size_t count) {
  float *p = (float *)malloc(sizeof(float) * (count ? count : 1));
  must_read(p, sizeof(float) * count);
  return p;
}

/* A filter as cases.py writes it; its arrays are owned by the caller (freed with free_filter). */
static filter_in_t read_filter(int s) {
  filter_in_t f;
  memset(&f, 0, sizeof f);
  const int has_weight = read_i32();
  f.kh = read_i32(), f.kw = read_i32(), f.pad_top = read_i32(), f.pad_left = read_i32();
  f.c = read_i32(), f.mode = read_i32();
  if (has_weight) {
    const int factors[3] = {1, 2, 3};
    f.weight = read_f32((size_t)factors[f.mode] * s * s * f.c * f.kh * f.kw);
  } else {
    f.vert = read_f32((size_t)s * f.kh);
    f.horz = read_f32((size_t)s * f.kw);
  }
  return f;
}

static void free_filter(filter_in_t *f) {
  free((void *)f->weight), free((void *)f->vert), free((void *)f->horz);
}

/* An (n, h, w, channels) image of the stored type into rows of w*channels + row_pad elements. */
static void *read_image(int n, int h, int w, int row_pad, buf_t *b) {
  b->type = read_i32(), b->pixel = read_i32();
  const size_t es = type_size(b->type), row = (size_t)w * b->pixel;
  b->row = (long)(row + row_pad), b->plane = b->row * h;
  char *data = (char *)calloc((size_t)n * b->plane + 1, es);
  for (size_t r = 0; r < (size_t)n * h; r++) must_read(data + es * r * b->row, es * row);
  b->ptr = data;
  return data;
}

static double element(const buf_t *b, size_t i) {
  if (b->type == T_F32) return ((const float *)b->ptr)[i];
  if (b->type == T_U8) return ((const uint8_t *)b->ptr)[i];
  return ((const uint16_t *)b->ptr)[i];
}

int main(int argc, char **argv) {
  FILE *dump = NULL;
  if (argc < 2 || argc > 3 || !(in_file = fopen(argv[1], "rb")) || (argc == 3 && !(dump = fopen(argv[2], "wb")))) {
    fprintf(stderr, "usage: driver CASES.bin [OUTPUTS.bin]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  char magic[4];
  must_read(magic, 4);
  if (memcmp(magic, "ESRC", 4)) return fprintf(stderr, "not a case file\n"), 2;
  const int count = read_i32();
  int failures = 0;
  for (int c = 0; c < count; c++) {
    char name[256] = {0};
    const int len = read_i32();
    must_read(name, len < 255 ? len : 255);
    if (len > 255) fseek(in_file, len - 255, SEEK_CUR);
    const int entry = read_i32(), n = read_i32(), h = read_i32(), w = read_i32(), s = read_i32();
    const int border = read_i32(), threads = read_i32(), row_pad = read_i32(), precision = read_i32();
    filter_in_t model = read_filter(s), chroma;
    color_in_t color;
    float *plane_args = NULL;
    if (entry == 1) {
      chroma = read_filter(s);
      memset(&color, 0, sizeof color);
      color.planes = read_i32(), color.outs = read_i32();
      for (int k = 0; k < MAXP; k++) color.kind[k] = read_i32();
      float *v = read_f32(2 * MAXP * MAXP + 2 * MAXP + 1);
      memcpy(color.coef, v, sizeof color.coef);
      memcpy(color.offset, v + MAXP * MAXP, sizeof color.offset);
      memcpy(color.mat, v + MAXP * MAXP + MAXP, sizeof color.mat);
      memcpy(color.ooff, v + 2 * MAXP * MAXP + MAXP, sizeof color.ooff);
      color.peak = v[2 * MAXP * MAXP + 2 * MAXP];
      free(v);
    } else {
      plane_args = read_f32(6);
    }
    buf_t in, expected, out;
    void *in_data = read_image(n, h, w, row_pad, &in);
    const int out_type = read_i32();
    void *exp_data = read_image(n, h * s, w * s, 0, &expected);
    float *tol = read_f32(2); /* tolerance, largest fraction of outputs that may differ at all */
    out = expected;
    out.type = out_type;
    out.row = (long)w * s * out.pixel + row_pad, out.plane = out.row * h * s;
    out.ptr = calloc((size_t)n * out.plane + 1, type_size(out.type));
    int code;
    if (precision != 0 && !(edgesr_precisions() & (1 << precision))) {
      code = -1; /* this build has no such reduced-precision variant: a failure, not a skip */
    } else if (entry == 1) {
      code = edgesr_color_p(&in, &out, n, h, w, s, border, &model, &chroma, &color, NULL, threads, precision);
    } else {
      const omap_t om = {plane_args[2], plane_args[3], plane_args[4], plane_args[5]};
      code = edgesr_plane_p(&in, &out, n, h, w, s, border, &model, plane_args[0], plane_args[1], &om, threads,
                            precision);
    }
    double worst = 0.0;
    size_t bad = 0, differ = 0;
    const size_t row = (size_t)w * s * out.pixel;
    for (size_t r = 0; code == 0 && r < (size_t)n * h * s; r++)
      for (size_t x = 0; x < row; x++) {
        const double got = element(&out, r * out.row + x), want = element(&expected, r * expected.row + x);
        const double d = fabs(got - want);
        if (!(d <= tol[0])) bad++; /* NaN counts as wrong */
        if (d != 0.0) differ++;
        if (d > worst || d != d) worst = d;
      }
    for (size_t r = 0; dump && r < (size_t)n * h * s; r++)
      fwrite((const char *)out.ptr + type_size(out.type) * r * out.row, type_size(out.type), row, dump);
    const double total = (double)n * h * s * row, frac = differ / total;
    const int ok = code == 0 && bad == 0 && frac <= tol[1];
    failures += !ok;
    printf("%s  %s%s  max |diff| %.3g (tolerance %.3g), %.2f%% differ (at most %.0f%%)%s\n", ok ? "ok  " : "FAIL",
           name, precision ? " fp16" : "", worst, tol[0], 100 * frac, 100 * tol[1],
           code ? "  [kernel returned an error, or has no such precision]" : "");
    free(in_data), free(exp_data), free(out.ptr), free(tol), free(plane_args);
    free_filter(&model);
    if (entry == 1) free_filter(&chroma);
  }
  if (dump) fclose(dump);
  printf("%d of %d cases passed\n", count - failures, count);
  return failures ? 1 : 0;
}
