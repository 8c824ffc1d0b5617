// The fused loss_gradient of the linear softmax classifier: one read of X, y
// (and sample_weight), nothing of size N x K written.
//
// fused_loss_gradient: a grid-stride loop; each thread takes whole rows, keeps
// W and b, the row's K scores and its own partial dW (D x K), db (K), loss and
// weight sum (in double, whatever the input dtype) in registers (D and K are
// template constants, so every register array is indexed by compile-time
// constants). At the end each block reduces its
// threads' partials in double (warp shuffles, then one slot per warp in shared
// memory) and writes one column of `partials` per block: no atomics on the
// results, so the sums are the same bits run after run.
//
// finalize_loss_gradient: one block per output sums that output's per-block
// partials in a fixed order, divides by the weight sum (or N), adds the L2 term
// and writes dW, db and the loss in the input dtype. It also checks W and b and
// turns the loss into NaN if the main kernel flagged a label or weight.
//
// Layout of a block's partials (NOUT = D*K + K + 2 values):
//   [0, D*K) dW row-major | [D*K, D*K+K) db | D*K+K loss | D*K+K+1 weight sum
// stored transposed, partials[j * gridDim.x + block], so finalize reads runs.
#include "common.cuh"

#define FS_BLOCK 256  // threads per block of fused_loss_gradient; cupy.py launches this many

// Blocks per multiprocessor the register allocator must leave room for. The
// narrow float32 shapes with D >= 2 and D*K + K + 2 <= 11 partial sums (the
// spiral's D = 2, K = 3 among them) fit 64 registers without spilling, so they
// ask for 4 blocks of 256 (64K registers): 1024 threads with 32 bytes of loads
// each in flight per SM, whatever register count a compiler version would drift
// to. Everything else (float64, float16, D = 1 rows loaded 4 at a time, wider
// shapes) takes the registers it needs: 0 is no minimum, as if none were given
// (an explicit 1 made ptxas take 92 registers instead of 80 for float64 2 x 3,
// one block fewer per SM); ptxas spilled at 64 registers there.
template <typename T, int D, int K>
constexpr int fused_min_blocks() {
    return (sizeof(T) == 4 && D >= 2 && D * K + K + 2 <= 11) ? 4 : 0;
}

// exp for the fused kernel. float: __expf (ex2.approx of x*log2(e)), a few ulp off
// expf for the shifted scores z <= 0 it sees (relative error ~|z| 2^-24, on terms
// that are then ~e^z small), and a third of expf's instructions: at 70% of an
// H200's bandwidth a 12-byte row may cost ~130 thread-instructions of the whole
// GPU, and the row's arithmetic already takes about half of that. ex2.approx is
// not promised exact at 0, and the row max's own term must be exactly 1 (ties
// and the log1p of the rest, in accumulate_row): a select makes it so.
// double: exp, minus its subnormal-result branch (z < -708, where e^z < 1e-307
// next to the row max's 1): that branch is an out-of-line call whose register
// saves made ptxas report spills; NaN still reaches exp and stays NaN.
__device__ __forceinline__ float fused_exp(float v) { return v == 0.0f ? 1.0f : __expf(v); }
__device__ __forceinline__ double fused_exp(double v) { return v < -708.0 ? 0.0 : exp(v); }

// Add one row's contribution to the thread's partials. The row's arithmetic is
// in A (float for float32/float16, double for float64); the partial sums are in
// double for every dtype, so a thread's thousands of rows at N = 1e9 add no
// float32 rounding (float32 in, float32 out, sums over N in float64). That costs
// D + K + 2 float-to-double conversions and D*K + K + 2 double adds per row.
template <typename T, typename L, int D, int K, typename A>
__device__ __forceinline__ void accumulate_row(const T* x, L label, T weight, bool weighted,
                                               const A (&Wr)[D][K], const A (&br)[K],
                                               double (&acc)[D * K + K + 2],
                                               unsigned int& bits) {
    A xa[D];
    bool finite_row = true;
#pragma unroll
    for (int d = 0; d < D; ++d) {
        xa[d] = to_acc(x[d]);
        finite_row = finite_row && finite_(xa[d]);
    }
    if (!finite_row) bits |= FS_BAD_X;

    // Scores as the reference computes them: (x @ W) + b.
    A z[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
        A s = A(0);
#pragma unroll
        for (int d = 0; d < D; ++d) s = fma_(xa[d], Wr[d][k], s);
        z[k] = s + br[k];
    }
    A m = z[0];
#pragma unroll
    for (int k = 1; k < K; ++k) m = nanmax(m, z[k]);
    const bool finite_max = finite_(m);
    const A shift = finite_max ? m : A(0);

    const long long lab = (long long)label;  // uint64 labels >= 2^63 turn negative: flagged
    if (lab < 0 || lab >= K) {
        bits |= FS_BAD_LABEL;
        return;
    }
    // sum: of all exp(z); rest: of those below the max, whose own term is exactly
    // 1 (fused_exp(0) = 1), so a tie adds exactly 1.
    A e[K], sum = A(0), rest = A(0), zy = A(0);
#pragma unroll
    for (int k = 0; k < K; ++k) {
        z[k] = z[k] - shift;
        e[k] = fused_exp(z[k]);
        sum += e[k];
        rest += z[k] < A(0) ? e[k] : A(0);
        if (k == lab) zy = z[k];  // a select, not a run-time index into registers
    }
    A wi = A(1);
    if (weighted) {
        wi = to_acc(weight);
        if (!(wi >= A(0)) || !finite_(wi)) bits |= FS_BAD_WEIGHT;
    }
    const A inv = A(1) / sum;
    double xd[D];
#pragma unroll
    for (int d = 0; d < D; ++d) xd[d] = (double)xa[d];
#pragma unroll
    for (int k = 0; k < K; ++k) {
        // dscores, unnormalised: w (p - onehot), then summed in double.
        const double g = (double)(wi * (e[k] * inv - (k == lab ? A(1) : A(0))));
        acc[D * K + k] += g;
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d * K + k] = fma(xd[d], g, acc[d * K + k]);
    }
    // Cross-entropy from the log-softmax, never log(p): exact when p_y underflows.
    // log(sum) as in common.cuh's log_sum_shifted, with one log1p: a sum below 2
    // with a finite max has a unique max (ties would add 1 each), so its log is
    // log1p(rest), accurate for a confident row (e^-20 costs e^-20, not 0); past 2,
    // log1p(sum - 1) = log(sum) with no cancellation. A max that is not finite
    // (scores overflowing) gives log1p(sum - 1) = log(sum): -inf, +inf or NaN.
    const A lse = log1p_((finite_max && sum < A(2)) ? rest : sum - A(1));
    const double wd = (double)wi;
    acc[D * K + K] = fma(wd, (double)(lse - zy), acc[D * K + K]);
    acc[D * K + K + 1] += wd;
}

template <typename T, typename L, int D, int K>
__global__ void __launch_bounds__(FS_BLOCK, (fused_min_blocks<T, D, K>()))
fused_loss_gradient(const T* __restrict__ X, const L* __restrict__ y,
                    const T* __restrict__ w,  // sample weights, or null
                    const T* __restrict__ W, const T* __restrict__ b, long long n,
                    int vec,  // 1: X, y and w start 16-byte aligned, vector loads are safe
                    double* __restrict__ partials, unsigned int* __restrict__ flag) {
    typedef typename acc_of<T>::type A;
    constexpr int NOUT = D * K + K + 2;
    // Rows per chunk: as many whole rows as fill one 16-byte load (D=2 float32: 2),
    // else one row, loaded in 16-byte pieces when its size allows.
    constexpr int RB = D * (int)sizeof(T);
    constexpr int R = (RB < 16 && 16 % RB == 0) ? 16 / RB : 1;
    // Chunks in flight per thread before the first use: 32 bytes of X (with 50%
    // occupancy, ~50 KB per multiprocessor: enough to cover DRAM latency at full
    // bandwidth); wide rows take one at a time to spare registers.
    constexpr int CB = R * RB;
    constexpr int U = CB >= 32 ? 1 : 32 / CB;

    A Wr[D][K], br[K];
#pragma unroll
    for (int d = 0; d < D; ++d)
#pragma unroll
        for (int k = 0; k < K; ++k) Wr[d][k] = to_acc(W[d * K + k]);
#pragma unroll
    for (int k = 0; k < K; ++k) br[k] = to_acc(b[k]);

    double acc[NOUT];
#pragma unroll
    for (int j = 0; j < NOUT; ++j) acc[j] = 0.0;
    unsigned int bits = 0;
    const bool weighted = (w != nullptr);
    const bool v = (vec != 0);

    const long long nchunks = n / R;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long c = tid;
    // Main loop: U chunks per thread, all loads issued before any arithmetic.
    for (; c + (long long)(U - 1) * stride < nchunks; c += (long long)U * stride) {
        T xs[U][R * D];
        L ys[U][R];
        T ws[U][R];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const long long r0 = (c + u * stride) * R;
            load_run<T, R * D>(X + r0 * D, xs[u], v);
            load_run<L, R>(y + r0, ys[u], v);
            if (weighted) load_run<T, R>(w + r0, ws[u], v);
        }
#pragma unroll
        for (int u = 0; u < U; ++u)
#pragma unroll
            for (int r = 0; r < R; ++r)
                accumulate_row<T, L, D, K, A>(&xs[u][r * D], ys[u][r], ws[u][r], weighted, Wr,
                                              br, acc, bits);
    }
    // The last (fewer than U) chunks of this thread.
    for (; c < nchunks; c += stride) {
        T xs[R * D];
        L ys[R];
        T ws[R];
        const long long r0 = c * R;
        load_run<T, R * D>(X + r0 * D, xs, v);
        load_run<L, R>(y + r0, ys, v);
        if (weighted) load_run<T, R>(w + r0, ws, v);
#pragma unroll
        for (int r = 0; r < R; ++r)
            accumulate_row<T, L, D, K, A>(&xs[r * D], ys[r], ws[r], weighted, Wr, br, acc, bits);
    }
    // The n % R rows after the last whole chunk.
    const long long t = nchunks * R + tid;
    if (t < n) {
        T x[D];
        load_run<T, D>(X + t * D, x, false);
        accumulate_row<T, L, D, K, A>(x, y[t], weighted ? w[t] : T(), weighted, Wr, br, acc,
                                      bits);
    }
    if (bits) atomicOr(flag, bits);  // rare: only where a value is bad

    // Block reduction in double, in a fixed order, like everything above it.
    __shared__ double red[FS_BLOCK / 32][NOUT];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < NOUT; ++j) {
        const double s = warp_sum(acc[j]);
        if (lane == 0) red[warp][j] = s;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < NOUT; j += blockDim.x) {
        double s = 0.0;
        for (int q = 0; q < FS_BLOCK / 32; ++q) s += red[q][j];
        partials[(long long)j * gridDim.x + blockIdx.x] = s;
    }
}

// Second pass: gridDim.x = D*K + K + 1 blocks, one per output (dW..., db..., loss).
template <typename T>
__global__ void __launch_bounds__(FS_BLOCK)
finalize_loss_gradient(const double* __restrict__ partials, int nb, int D, int K,
                       const T* __restrict__ W, const T* __restrict__ b, double reg,
                       double n_rows, int weighted, unsigned int* __restrict__ flag,
                       T* __restrict__ loss, T* __restrict__ dW, T* __restrict__ db) {
    __shared__ double scratch[FS_BLOCK / 32];
    __shared__ unsigned int bad_params;
    const int DK = D * K, j = blockIdx.x;
    const double total = block_sum(partials + (long long)j * nb, nb, scratch);
    // Every block sums the weight column itself: cheaper than a third launch.
    const double wsum =
        weighted ? block_sum(partials + (long long)(DK + K + 1) * nb, nb, scratch) : n_rows;
    if (j < DK) {
        if (threadIdx.x == 0) dW[j] = from_double<T>(total / wsum + reg * (double)to_acc(W[j]));
        return;
    }
    if (j < DK + K) {
        if (threadIdx.x == 0) db[j - DK] = from_double<T>(total / wsum);
        return;
    }
    // The loss block: 0.5 reg |W|^2 and the W, b checks, spread over the block.
    if (threadIdx.x == 0) bad_params = 0u;
    double ww = 0.0;
    unsigned int mine = 0u;
    for (int i = threadIdx.x; i < DK; i += blockDim.x) {
        const double v = (double)to_acc(W[i]);
        ww += v * v;
        if (!finite_(v)) mine |= FS_BAD_PARAM;
    }
    for (int i = threadIdx.x; i < K; i += blockDim.x)
        if (!finite_((double)to_acc(b[i]))) mine |= FS_BAD_PARAM;
    __syncthreads();  // bad_params is zeroed
    if (mine) atomicOr(&bad_params, mine);
    ww = block_total(ww, scratch);  // its barriers also publish bad_params
    if (threadIdx.x == 0) {
        unsigned int f = *flag | bad_params;
        if (weighted && !(wsum > 0.0)) f |= FS_BAD_WSUM;
        *flag = f;
        double value = total / wsum + 0.5 * reg * ww;
        if (f & FS_POISON) value = quiet_nan<double>();
        loss[0] = from_double<T>(value);
    }
}
