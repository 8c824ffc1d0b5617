// Row kernels over scores S (N, K), C-contiguous, reduced along the last axis:
// softmax / log_softmax / logsumexp, and the cross-entropy with its gradient.
//
// G threads (a power of two, 1..256) share a row: each takes columns lane,
// lane+G, ...; the row max and the sum of exponentials are reduced across the
// group with warp shuffles (G <= 32) or shuffles plus shared memory (G > 32).
// cupy.py picks G so that each thread holds ~8 columns: one thread per row for
// K <= 8, a whole block for K >= 2048. Three sweeps over the row (max, sum,
// write); the second and third are served from L1/L2, so DRAM sees about one
// read of S and one write of the result.
//
// The maths is SciPy's (scipy.special), which the reference follows: the shift
// is the row max when it is finite, and log(sum exp(S - max)) is log1p of the
// sum over the entries below the max when the max is unique, so logsumexp keeps
// full relative accuracy near 0 (common.cuh: log_sum_shifted). A row whose max
// is not finite: softmax is all NaN (fully masked, holding +inf, or NaN);
// log_softmax is NaN for a fully masked row and, for a row holding +inf, NaN at
// the +inf entries and -inf elsewhere; logsumexp is -inf, +inf or NaN.
#include "common.cuh"

#define FS_ROW_BLOCK 256  // threads per block of the row kernels; cupy.py launches this many
// At least 4 blocks of 256 threads per multiprocessor, so at most 64 registers:
// left to itself ptxas picked 48 for softmax_rows<double> and spilled 8 bytes.
#define FS_ROW_MIN_BLOCKS 4

template <bool MAX>
__device__ __forceinline__ double combine(double a, double b) {
    return MAX ? nanmax(a, b) : a + b;
}

// Reduce v over the G threads of this thread's row; every one of them gets the
// result. The xor butterfly hands each lane the same bits (each step combines
// two equal partial results in either order, and + is commutative in IEEE).
// Every thread of the block must call this (block-uniform loop, see below).
template <bool MAX>
__device__ __forceinline__ double group_reduce(double v, int G, double* scratch) {
    if (G == 1) return v;
    const int width = G < 32 ? G : 32;
    for (int off = width >> 1; off > 0; off >>= 1)
        v = combine<MAX>(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (G <= 32) return v;
    const int warp = threadIdx.x >> 5, per_row = G >> 5, first = (threadIdx.x / G) * per_row;
    __syncthreads();  // scratch may still be read by a previous call
    if ((threadIdx.x & 31) == 0) scratch[warp] = v;
    __syncthreads();
    double t = scratch[first];
    for (int q = 1; q < per_row; ++q) t = combine<MAX>(t, scratch[first + q]);
    return t;
}

// One entry's share of the row sums: a tie with a finite max counts in `ties`,
// anything else adds exp(x - shift) to `rest` (see log_sum_shifted).
template <typename T>
__device__ __forceinline__ void add_to_row_sums(T x, T shift, bool finite_max, double& rest,
                                                double& ties) {
    if (finite_max && x == shift)
        ties += 1.0;
    else
        rest += (double)exp_(x - shift);
}

// mode 0: softmax, 1: log_softmax (out is N x K); 2: logsumexp (out is N).
template <typename T>
__global__ void __launch_bounds__(FS_ROW_BLOCK, FS_ROW_MIN_BLOCKS)
softmax_rows(const T* __restrict__ S, T* __restrict__ out, long long n, int K, int G,
             int mode) {
    __shared__ double scratch[FS_ROW_BLOCK / 32];
    const int rows_per_block = blockDim.x / G, lane = threadIdx.x & (G - 1);
    // Block-uniform loop: every thread runs every iteration (the reductions have
    // barriers), threads past the last row just carry neutral values.
    for (long long base = (long long)blockIdx.x * rows_per_block; base < n;
         base += (long long)gridDim.x * rows_per_block) {
        const long long row = base + threadIdx.x / G;
        const bool active = row < n;
        const T* s = S + row * K;
        double m = neg_inf<double>();
        if (active)
            for (int k = lane; k < K; k += G) m = nanmax(m, (double)s[k]);
        m = group_reduce<true>(m, G, scratch);
        const bool finite_max = finite_(m);
        const T shift = finite_max ? (T)m : T(0);
        double rest = 0.0, ties = 0.0;
        if (active)
            for (int k = lane; k < K; k += G) add_to_row_sums(s[k], shift, finite_max, rest, ties);
        rest = group_reduce<false>(rest, G, scratch);
        ties = group_reduce<false>(ties, G, scratch);
        if (!active) continue;
        const double lse = log_sum_shifted(finite_max, rest, ties);  // log sum exp(S - shift)
        if (mode == 2) {
            if (lane == 0) out[row] = (T)(lse + (double)shift);
        } else if (mode == 0) {
            const double total = ties + rest;
            for (int k = lane; k < K; k += G)
                out[row * K + k] =
                    finite_max ? (T)((double)exp_(s[k] - shift) / total) : quiet_nan<T>();
        } else {
            for (int k = lane; k < K; k += G) out[row * K + k] = (T)((double)(s[k] - shift) - lse);
        }
    }
}

// Per row i, with c_i = scale * (w ? w_i : 1) / (mean && wsum ? *wsum : 1):
//   rows_out[i] = c_i * (lse_i - S_{i,y_i})                 (the weighted row loss)
//   dS[i, :]    = c_i * (softmax(S_i) - onehot(y_i))        (if dS is not null)
// lse_i - S_{i,y_i} = log_sum_shifted(...) - (S_{i,y_i} - shift): a confident,
// correct row costs its true e^-margin, not 0. dS follows the reference's
// exp(S - shift) / sum (for a row holding +inf: NaN at the +inf entries, else 0).
// S_i is S[i, :] + b when b is given (the wide loss_gradient path passes X @ W
// and adds b here). dS may be S itself: every element is read and then written
// by the same thread, and the label's score reaches the other threads of the row
// through a reduction, never through memory another thread may be writing.
template <typename T, typename L>
__global__ void __launch_bounds__(FS_ROW_BLOCK, FS_ROW_MIN_BLOCKS)
cross_entropy_rows(const T* S, const T* __restrict__ b, const L* __restrict__ y,
                   const T* __restrict__ w, const double* __restrict__ wsum, int mean,
                   double scale, T* __restrict__ rows_out, T* dS, long long n, int K, int G,
                   unsigned int* __restrict__ flag) {
    __shared__ double scratch[FS_ROW_BLOCK / 32];
    unsigned int bits = 0u;
    double inv_wsum = 1.0;
    if (wsum != nullptr) {
        const double ws = *wsum;
        if (mean) inv_wsum = 1.0 / ws;
        if (!(ws > 0.0) && blockIdx.x == 0 && threadIdx.x == 0) bits |= FS_BAD_WSUM;
    }
    const int rows_per_block = blockDim.x / G, lane = threadIdx.x & (G - 1);
    for (long long base = (long long)blockIdx.x * rows_per_block; base < n;
         base += (long long)gridDim.x * rows_per_block) {
        const long long row = base + threadIdx.x / G;
        const bool active = row < n;
        const T* s = S + row * K;
        long long lab = -1;
        double c = 0.0;
        double m = neg_inf<double>(), zy = 0.0;  // zy: this thread's share of S_{i,y_i}
        if (active) {
            lab = (long long)y[row];
            if (lab < 0 || lab >= K) bits |= FS_BAD_LABEL;
            c = scale * inv_wsum;
            if (w != nullptr) {
                const double wi = (double)w[row];
                if (!(wi >= 0.0) || !finite_(wi)) bits |= FS_BAD_WEIGHT;
                c *= wi;
            }
            for (int k = lane; k < K; k += G) {
                const T x = b != nullptr ? (T)(s[k] + b[k]) : s[k];
                if (!finite_(x)) bits |= FS_BAD_SCORE;
                m = nanmax(m, (double)x);
                if (k == lab) zy = (double)x;
            }
        }
        m = group_reduce<true>(m, G, scratch);
        const bool finite_max = finite_(m);
        const T shift = finite_max ? (T)m : T(0);
        zy = group_reduce<false>(zy, G, scratch);  // one thread holds it, the rest add 0
        double rest = 0.0, ties = 0.0;
        if (active)
            for (int k = lane; k < K; k += G) {
                const T x = b != nullptr ? (T)(s[k] + b[k]) : s[k];
                add_to_row_sums(x, shift, finite_max, rest, ties);
            }
        rest = group_reduce<false>(rest, G, scratch);
        ties = group_reduce<false>(ties, G, scratch);
        if (!active) continue;
        const bool valid = lab >= 0 && lab < K;
        // z_y = S_y - shift in T, as the reference computes it; NaN for a bad label.
        const double z_y = valid ? (double)((T)zy - shift) : quiet_nan<double>();
        if (lane == 0) rows_out[row] = (T)(c * (log_sum_shifted(finite_max, rest, ties) - z_y));
        if (dS != nullptr) {
            const double total = ties + rest;
            for (int k = lane; k < K; k += G) {
                const T x = b != nullptr ? (T)(s[k] + b[k]) : s[k];
                const double p = (double)exp_(x - shift) / total;
                dS[row * K + k] = (T)(c * (p - (k == lab ? 1.0 : 0.0)));
            }
        }
    }
    if (bits) atomicOr(flag, bits);
}
