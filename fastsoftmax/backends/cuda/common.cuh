// Helpers shared by the fastsoftmax CUDA kernels.
//
// Written for NVRTC (how CuPy compiles at run time) as much as for nvcc (how the
// tests check the sources): no host or standard-library headers, only builtins.
// The Python side inlines this file where a kernel source says #include
// "common.cuh", so CuPy's kernel cache key covers it.
#pragma once

// Value-check bits a kernel ORs into one unsigned flag in global memory.
// fastsoftmax/backends/cupy.py has the same numbers.
#define FS_BAD_X 1u        // NaN or infinity in X
#define FS_BAD_LABEL 2u    // a label outside [0, K)
#define FS_BAD_WEIGHT 4u   // a negative, NaN or infinite sample weight
#define FS_BAD_PARAM 8u    // NaN or infinity in W or b
#define FS_BAD_WSUM 16u    // sample weights that do not sum to a positive number
#define FS_BAD_SCORE 32u   // a non-finite score (row kernels; may be legitimate -inf)
// Bits whose results would otherwise look plausible: they turn the loss into NaN
// when the caller skipped the checks (check=False), so a bad value cannot pass
// silently through a training loop.
#define FS_POISON (FS_BAD_LABEL | FS_BAD_WEIGHT | FS_BAD_WSUM)

// float16 as raw bits: converting with PTX avoids cuda_fp16.h, which NVRTC
// does not always find.
struct __align__(2) half_t {
    unsigned short bits;
};

// The type a kernel does its per-row arithmetic in: float for float32/float16
// inputs, double for float64. Sums over rows (per-thread partial sums included)
// are always double: float32 in, float32 out, but sums over N in float64.
template <typename T> struct acc_of { typedef float type; };
template <> struct acc_of<double> { typedef double type; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(half_t v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}

template <typename T> __device__ __forceinline__ T from_double(double v);
template <> __device__ __forceinline__ float from_double<float>(double v) {
    return (float)v;
}
template <> __device__ __forceinline__ double from_double<double>(double v) { return v; }
template <> __device__ __forceinline__ half_t from_double<half_t>(double v) {
    half_t h;
    float f = (float)v;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
    return h;
}

// isfinite without <cmath>: false for NaN (comparisons with NaN are false) and +-inf.
__device__ __forceinline__ bool finite_(float v) { return fabsf(v) <= 3.402823466e38f; }
__device__ __forceinline__ bool finite_(double v) { return fabs(v) <= 1.7976931348623157e308; }

template <typename V> __device__ __forceinline__ V neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() {
    return __int_as_float(0xff800000);
}
template <> __device__ __forceinline__ double neg_inf<double>() {
    return __longlong_as_double(0xfff0000000000000LL);
}
template <typename V> __device__ __forceinline__ V quiet_nan();
template <> __device__ __forceinline__ float quiet_nan<float>() {
    return __int_as_float(0x7fc00000);
}
template <> __device__ __forceinline__ double quiet_nan<double>() {
    return __longlong_as_double(0x7ff8000000000000LL);
}

// max that propagates NaN, as CuPy's (and NumPy's) max does; fmax would drop it.
template <typename V> __device__ __forceinline__ V nanmax(V a, V b) {
    return (a > b || a != a) ? a : b;
}

// The reference's shift: the row max when finite, else 0 (fully masked rows,
// rows holding +inf or NaN), which gives scipy.special's NaN / -inf answers.
template <typename V> __device__ __forceinline__ V row_shift(V m) {
    return finite_(m) ? m : V(0);
}

__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return exp(v); }
__device__ __forceinline__ float log_(float v) { return logf(v); }
__device__ __forceinline__ double log_(double v) { return log(v); }
__device__ __forceinline__ float log1p_(float v) { return log1pf(v); }
__device__ __forceinline__ double log1p_(double v) { return log1p(v); }
__device__ __forceinline__ float fma_(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_(double a, double b, double c) { return fma(a, b, c); }

// log(sum_k exp(S_k - shift)) of one row, SciPy's way (scipy.special.logsumexp,
// gh-18295). With a finite max m, `rest` is the sum of exp(S_k - m) over the
// entries below m and `ties` counts the entries equal to m; a single max gives
// log1p(rest), which keeps full relative accuracy where the result is near 0
// (logsumexp([0, -40]) = 4.2e-18, where log(1 + 4.2e-18) would be 0). A max that
// is not finite shifts by 0 and `rest` is the plain sum of exp(S_k): log(0) = -inf
// for a fully masked row, log(inf) = +inf for a row holding +inf, NaN for NaN.
template <typename V>
__device__ __forceinline__ V log_sum_shifted(bool finite_max, V rest, V ties) {
    if (!finite_max) return log_(rest);
    return ties == V(1) ? log1p_(rest) : log_(ties + rest);
}

// Load N consecutive elements with the widest aligned vector loads (16 bytes
// where the run allows it). The caller guarantees alignment to the run's size
// (up to 16 bytes); `vec` false falls back to element loads for misaligned views.
template <typename E, int N>
__device__ __forceinline__ void load_run(const E* __restrict__ p, E (&out)[N], bool vec) {
    constexpr int B = N * (int)sizeof(E);
    if (vec) {
        if constexpr (B % 16 == 0) {
            union { uint4 v[B / 16]; E e[N]; } u;
#pragma unroll
            for (int i = 0; i < B / 16; ++i) u.v[i] = reinterpret_cast<const uint4*>(p)[i];
#pragma unroll
            for (int i = 0; i < N; ++i) out[i] = u.e[i];
            return;
        } else if constexpr (B == 8) {
            union { uint2 v; E e[N]; } u;
            u.v = *reinterpret_cast<const uint2*>(p);
#pragma unroll
            for (int i = 0; i < N; ++i) out[i] = u.e[i];
            return;
        } else if constexpr (B == 4 && N > 1) {
            union { unsigned int v; E e[N]; } u;
            u.v = *reinterpret_cast<const unsigned int*>(p);
#pragma unroll
            for (int i = 0; i < N; ++i) out[i] = u.e[i];
            return;
        } else if constexpr (B == 2 && N > 1) {
            union { unsigned short v; E e[N]; } u;
            u.v = *reinterpret_cast<const unsigned short*>(p);
#pragma unroll
            for (int i = 0; i < N; ++i) out[i] = u.e[i];
            return;
        }
    }
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = p[i];
}

// Sum over a warp in a fixed shuffle tree (deterministic); lane 0 gets the total.
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// Total of one double per thread over the whole block, in a fixed order (so the
// same inputs give the same bits every run); every thread gets the total.
// `scratch` holds one double per warp; blockDim.x is a multiple of 32.
__device__ __forceinline__ double block_total(double t, double* scratch) {
    t = warp_sum(t);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = t;
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += scratch[w];
    return total;
}

// Sum of v[0 .. count) by one whole block, in a fixed order; every thread gets it.
__device__ __forceinline__ double block_sum(const double* __restrict__ v, long long count,
                                            double* scratch) {
    double t = 0.0;
    for (long long i = threadIdx.x; i < count; i += blockDim.x) t += v[i];
    return block_total(t, scratch);
}
