"""Triton kernels of the GPU engine: one-layer models (eSR-MAX/TM/TR, Bicubic) fused, and the
colour mix. Imported only through `edgesr.engine.triton_backend`, which checks that Triton is
there (and, on a CPU device, that ``TRITON_INTERPRET=1`` was set before this module loads:
`triton.jit` picks compiled or interpreted functions when it decorates them).

Why fused: the torch forward writes the F*s*s*C filter responses of the whole frame to memory
and reads them back in several passes (eSR-TM_s2_K7_C16 at Full-HD: 265 MB). Here each program
loads one tile of LR pixels with its halo as a (pixels x taps) patch, computes every response of
one output phase with one matrix product (tensor cores for fp16/bf16), reduces them in registers
and stores only that phase's HR pixels.

Weights come packed as (F, s*s, KKP, CP): template kind f (value, key / value, query, key),
output phase r*s+q, tap (padded to a power of two), channel (padded). Numerics follow the torch
forward: max over the C channels (eSR-MAX; Bicubic is C = 1), or sum_c value_c * softmax_c(key)
with key = query * key for eSR-TR, computed as exp(k - max k) in float32.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Reductions: max over channels, softmax(key)-weighted sum, softmax(query * key)-weighted sum.
MAX, TEMPLATE, ATTENTION = 0, 1, 2


@triton.jit
def _rint(x):
    """Round half to even (numpy.rint, the C kernel's cvtps), for values of either sign."""
    f = tl.floor(x + 0.5)
    tie = (f - x) == 0.5
    odd = (f - 2.0 * tl.floor(f * 0.5)) != 0.0
    return tl.where(tie & odd, f - 1.0, f)


@triton.jit
def _quantize(x, lo, hi):
    """Clamp to lo..hi, then round half to even (the C kernel's order)."""
    return _rint(tl.minimum(tl.maximum(x, lo), hi))


@triton.jit
def _responses(patch, w_ptr, f: tl.constexpr, ph: tl.constexpr, SS: tl.constexpr, KKP: tl.constexpr,
               CP: tl.constexpr, USE_DOT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """(pixels, KKP) patch x packed weights of kind f, phase ph -> (pixels, CP) float32."""
    kk = tl.arange(0, KKP)[:, None]
    cc = tl.arange(0, CP)[None, :]
    w = tl.load(w_ptr + ((f * SS + ph) * KKP + kk) * CP + cc)
    if UPCAST:  # bf16 under the interpreter: exact bf16 products, float32 sums
        w = w.to(tl.float32)
    if USE_DOT:
        return tl.dot(patch, w, input_precision=PRECISION, out_dtype=tl.float32)
    return tl.sum(patch.to(tl.float32)[:, :, None] * w.to(tl.float32)[None, :, :], axis=1)


@triton.jit
def one_layer_kernel(x_ptr, w_ptr, out_ptr, H, W,
                     sxn, sxy, sxx, sxc, c0, c1, c2, c3, c_bias,
                     son, soy, sox, o_scale, o_offset, o_lo, o_hi,
                     PAD_T: tl.constexpr, PAD_L: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                     KKP: tl.constexpr, S: tl.constexpr, C: tl.constexpr, CP: tl.constexpr,
                     MODE: tl.constexpr, NIN: tl.constexpr, BORDER: tl.constexpr, OUT_INT: tl.constexpr,
                     USE_DOT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
                     BH: tl.constexpr, BW: tl.constexpr):
    """One program: a BH x BW tile of LR pixels of image program_id(2) -> its (s*BH) x (s*BW) output.

    The model input is v = sum_k c_k * x[..., k] + c_bias over NIN interleaved input channels
    (strides in elements), so luma, chroma or gray is read straight from uint8/uint16/float
    pixels; outside the image v is 0 (the model's zero padding, BORDER=0) or the nearest edge
    pixel's (BORDER=1). The output o leaves as o * o_scale + o_offset, for OUT_INT clamped to
    o_lo..o_hi and rounded half to even, at out[n, s*y + r, s*x + q] (strides in elements).
    """
    pid_x = tl.program_id(0)
    pid_y = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    pix = tl.arange(0, BH * BW)
    py = pid_y * BH + pix // BW
    px = pid_x * BW + pix % BW
    tap = tl.arange(0, KKP)
    rows = py[:, None] + (tap // KW)[None, :] - PAD_T
    cols = px[:, None] + (tap % KW)[None, :] - PAD_L
    used = (tap < KH * KW)[None, :]
    if BORDER:
        inside = used & (rows == rows)  # every tap reads the nearest edge pixel
    else:
        inside = used & (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    rows = tl.minimum(tl.maximum(rows, 0), H - 1)
    cols = tl.minimum(tl.maximum(cols, 0), W - 1)
    src = x_ptr + n * sxn + rows * sxy + cols * sxx
    v = tl.load(src, mask=inside, other=0).to(tl.float32) * c0
    if NIN > 1:
        v += tl.load(src + sxc, mask=inside, other=0).to(tl.float32) * c1
    if NIN > 2:
        v += tl.load(src + 2 * sxc, mask=inside, other=0).to(tl.float32) * c2
    if NIN > 3:
        v += tl.load(src + 3 * sxc, mask=inside, other=0).to(tl.float32) * c3
    v = tl.where(inside, v + c_bias, 0.0)
    if UPCAST:
        patch = v.to(w_ptr.dtype.element_ty).to(tl.float32)
    else:
        patch = v.to(w_ptr.dtype.element_ty)
    channel_ok = (tl.arange(0, CP) < C)[None, :]
    keep = (py < H) & (px < W)
    dst = out_ptr + n * son
    for ph in tl.static_range(S * S):
        value = _responses(patch, w_ptr, 0, ph, S * S, KKP, CP, USE_DOT, UPCAST, PRECISION)
        if MODE == 0:
            o = tl.max(tl.where(channel_ok, value, float("-inf")), axis=1)
        else:
            key = _responses(patch, w_ptr, 1, ph, S * S, KKP, CP, USE_DOT, UPCAST, PRECISION)
            if MODE == 2:
                key = key * _responses(patch, w_ptr, 2, ph, S * S, KKP, CP, USE_DOT, UPCAST, PRECISION)
            key = tl.where(channel_ok, key, float("-inf"))
            e = tl.exp(key - tl.max(key, axis=1)[:, None])
            o = tl.sum(value * e, axis=1) / tl.sum(e, axis=1)
        o = o * o_scale + o_offset
        if OUT_INT:
            o = _quantize(o, o_lo, o_hi)
        hr_y = py * S + ph // S
        hr_x = px * S + ph % S
        tl.store(dst + hr_y * soy + hr_x * sox, o.to(out_ptr.dtype.element_ty), mask=keep)


@triton.jit
def mix_kernel(t_ptr, out_ptr, mat_ptr, ooff_ptr, count, stn, stp, son, peak,
               P: tl.constexpr, OUTS: tl.constexpr, CLIP: tl.constexpr, BLOCK: tl.constexpr):
    """HR planes t (N, P, count) float32 -> interleaved integers out (N, count, OUTS).

    out[k] = round_half_even(clamp(ooff[k] + sum_p mat[k, p] * t'[p], 0, peak)) with t'[p] the
    plane clipped to 0..1 when bit p of CLIP is set (model planes), as the C colour pipeline.
    ``mat`` is (4, 4) float32 row-major, ``ooff`` (4,).
    """
    n = tl.program_id(1).to(tl.int64)
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    keep = idx < count
    src = t_ptr + n * stn + idx
    o0 = tl.zeros([BLOCK], tl.float32) + tl.load(ooff_ptr + 0)
    o1 = tl.zeros([BLOCK], tl.float32) + tl.load(ooff_ptr + 1)
    o2 = tl.zeros([BLOCK], tl.float32) + tl.load(ooff_ptr + 2)
    o3 = tl.zeros([BLOCK], tl.float32) + tl.load(ooff_ptr + 3)
    for p in tl.static_range(P):
        t = tl.load(src + p * stp, mask=keep, other=0.0)
        if (CLIP >> p) & 1:
            t = tl.minimum(tl.maximum(t, 0.0), 1.0)
        o0 += tl.load(mat_ptr + p) * t
        o1 += tl.load(mat_ptr + 4 + p) * t
        o2 += tl.load(mat_ptr + 8 + p) * t
        o3 += tl.load(mat_ptr + 12 + p) * t
    dst = out_ptr + n * son + idx * OUTS
    tl.store(dst, _quantize(o0, 0.0, peak).to(out_ptr.dtype.element_ty), mask=keep)
    if OUTS > 1:
        tl.store(dst + 1, _quantize(o1, 0.0, peak).to(out_ptr.dtype.element_ty), mask=keep)
    if OUTS > 2:
        tl.store(dst + 2, _quantize(o2, 0.0, peak).to(out_ptr.dtype.element_ty), mask=keep)
    if OUTS > 3:
        tl.store(dst + 3, _quantize(o3, 0.0, peak).to(out_ptr.dtype.element_ty), mask=keep)
