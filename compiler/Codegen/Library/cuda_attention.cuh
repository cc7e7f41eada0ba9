// tlc generated kernels: FlashAttention-2 on tensor cores (CUDA C++, NVRTC)
//
// compiler/Codegen/Library/cuda_attention.cuh: emitted after cuda_mma.cuh in
// every CUDA kernel source; the bf16 attention kernels of
// compiler/Codegen/Kernels/Attention.cpp instantiate it with the op's shapes
// (f32 attention keeps the scalar kernels generated there).
//
// q [B, H, T, D], k and v [B, KV, S, D] bf16, lse [B, H, T] f32; query head h
// reads KV head h / (H / KV) in place (GQA, no copies). With BTHD q is
// [B, T, H, D] and k, v [B, S, KV, D] (the projections' layout): a head's
// rows are H * D (KV * D) elements apart, which only the copies see. A block is 4 warps;
// each warp owns 16 rows of a 64-row tile and keeps its accumulators in mma
// fragments (row g and g + 8 of its 16, columns 2t, 2t + 1 of every 8).
// Tiles sit in dynamic shared memory, rows padded by 16 bytes so that the 8
// rows an ldmatrix reads fall in different banks, filled by cp.async one tile
// ahead of the one in use (two buffers). Softmax statistics are f32, in
// base-2 units inside (exp2f), the saved log-sum-exp in natural units.
//   forward:      64 queries a block, over key tiles: S = Q K^T, online softmax, O += P V
//   gradKeyValueQuery: 64 keys a block, over the query tiles of every query
//                 head of its group: dS = P o (dO V^T - delta), dV = P^T dO,
//                 dK = scale dS^T Q, and dQ = scale dS K summed over the key
//                 tiles in a fixed order (no atomics: the same bits every run)
// Causal (key j visible to query i when j <= i) skips the tiles above the
// diagonal and masks within the diagonal ones.
namespace tlfa {

constexpr int kRows = 64;  // rows of a tile: 16 for each of the block's 4 warps
// Macros, not constants: an artifact without bf16 attention would otherwise
// warn that they are unused.
#define TLFA_LOG2E 1.4426950408889634f
#define TLFA_LN2 0.6931471805599453f

TL_INLINE int laneId() { return threadIdx.x % 32; }
TL_INLINE int warpId() { return threadIdx.x / 32; }

// Starts copying rows [first, first + N) of a bf16 matrix with rows of D
// elements, RS apart, into a tile of stride D + 8; rows at or past `limit`
// become zeros.
template <int D, int N, int64_t RS = D>
TL_INLINE void stageRows(uint16_t *tile, const uint16_t *src, int64_t first, int64_t limit) {
  for (int e = threadIdx.x; e < N * D / 8; e += blockDim.x) {
    const int r = e / (D / 8), c = e % (D / 8) * 8;
    const bool valid = first + r < limit;
    cpAsync16(tile + r * (D + 8) + c, src + (valid ? first + r : 0) * RS + c, valid);
  }
}

// acc[n] += A B for the warp's 16 rows `a` of a tile (A: 16 x K) and B^T's
// rows `b` (NT x 8 rows, K columns): both tiles hold their rows as rows.
// With B_ROWS, `b` holds B's rows instead (K rows, NT x 8 columns).
template <int K, int NT, int PA, int PB, bool B_ROWS = false>
TL_INLINE void mmaRows(float (&acc)[NT][4], const uint16_t *a, const uint16_t *b) {
  const int lane = laneId();
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t af[4];
    ldmatrix<4>(af, a + (lane % 16) * PA + k0 + lane / 16 * 8);
#pragma unroll
    for (int n = 0; n < NT; n += 2) {
      uint32_t bf[4];  // (n, k lo), (n, k hi), (n + 1, k lo), (n + 1, k hi)
      if constexpr (B_ROWS)
        ldmatrixTrans<4>(bf, b + (k0 + lane % 8 + lane / 8 % 2 * 8) * PB + n * 8 + lane / 16 * 8);
      else
        ldmatrix<4>(bf, b + (n * 8 + lane % 8 + lane / 16 * 8) * PB + k0 + lane / 8 % 2 * 8);
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mmaBf16(acc[n], af, b0);
      mmaBf16(acc[n + 1], af, b1);
    }
  }
}

// acc[n] += P B for P held as accumulators (16 x K, K / 8 tiles of 8
// columns; rounded to bf16) and B's rows `b` (K rows, NT x 8 columns).
template <int K, int NT, int PB>
TL_INLINE void mmaAccumulators(float (&acc)[NT][4], const float (&p)[K / 8][4], const uint16_t *b) {
  const int lane = laneId();
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    const uint32_t af[4] = {packBf16x2(p[2 * kk][0], p[2 * kk][1]), packBf16x2(p[2 * kk][2], p[2 * kk][3]),
                            packBf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                            packBf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int n = 0; n < NT; n += 2) {
      uint32_t bf[4];  // (k lo, n), (k hi, n), (k lo, n + 1), (k hi, n + 1), transposed
      ldmatrixTrans<4>(bf, b + (kk * 16 + lane % 8 + lane / 8 % 2 * 8) * PB + n * 8 + lane / 16 * 8);
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mmaBf16(acc[n], af, b0);
      mmaBf16(acc[n + 1], af, b1);
    }
  }
}

template <int NT> TL_INLINE void clear(float (&acc)[NT][4]) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.0f;
}

// Stores the warp's 16 x (NT x 8) accumulators times `scale` as bf16 rows
// row0 + (0..15) of `dst` (RS elements apart), those below `limit`.
template <int NT, int64_t RS = NT * 8>
TL_INLINE void storeRows(uint16_t *dst, const float (&acc)[NT][4], int64_t row0, int64_t limit,
                         const float (&scale)[2]) {
  const int g = laneId() / 4, t = laneId() % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = row0 + g + 8 * r;
    if (row >= limit) continue;
#pragma unroll
    for (int n = 0; n < NT; ++n)
      *(uint32_t *)(dst + row * RS + n * 8 + 2 * t) =
          packBf16x2(acc[n][2 * r] * scale[r], acc[n][2 * r + 1] * scale[r]);
  }
}

// Waits for the tiles of `step` (and for the block to see them), having
// started those of the next step, when there is one, into the other buffer.
template <typename Stage> TL_INLINE void awaitStep(int step, int steps, Stage stageStep) {
  if (step + 1 < steps) {
    stageStep(step + 1);
    cpAsyncCommit();
    cpAsyncWait<1>();
  } else {
    cpAsyncWait<0>();
  }
  __syncthreads();
}

TL_INLINE float quadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
TL_INLINE float quadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace tlfa

template <int H, int KV, int T, int S, int D, bool CAUSAL, bool BTHD = false> struct TlFlashAttention {
  static_assert(D % 16 == 0 && D <= 128, "head dimension: a multiple of 16, at most 128");
  static constexpr int G = H / KV, P = D + 8, kTile = tlfa::kRows * P;
  // The distance between a head's rows, and where the head of batch row b starts.
  static constexpr int64_t QS = BTHD ? H * D : D, KS = BTHD ? KV * D : D;
  static __device__ int64_t qHead(int b, int h) { return BTHD ? ((int64_t)b * T * H + h) * D : ((int64_t)b * H + h) * T * D; }
  static __device__ int64_t kvHead(int b, int kvh) {
    return BTHD ? ((int64_t)b * S * KV + kvh) * D : ((int64_t)b * KV + kvh) * S * D;
  }
  static constexpr int kQueryTiles = (T + tlfa::kRows - 1) / tlfa::kRows;
  static constexpr int kKeyTiles = (S + tlfa::kRows - 1) / tlfa::kRows;
  // Query tile of gradKeyValueQuery: 32 at D = 128 keeps dK, dV and the scores in registers.
  static constexpr int BQ = D > 64 ? 32 : 64, kQTile = BQ * P;
  // Dynamic shared memory of each kernel, in bytes (Attention.cpp asks for the same).
  static constexpr int kForwardShared = 5 * kTile * 2;                  // Q, 2 x (K, V)
  static constexpr int PS = tlfa::kRows + 8;  // the dS tile's row: 64 keys
  static constexpr int kGradShared = (2 * kTile + 4 * kQTile + BQ * PS) * 2 + 4 * BQ * 4;  // K, V, 2 x (Q, dO, lse, delta), dS

  // Key tiles query tile `qt` sees.
  static __device__ int keyTiles(int qt) { return CAUSAL && qt + 1 < kKeyTiles ? qt + 1 : kKeyTiles; }

  // Starts copying key tile `jt` of K and V (rows past S: zeros) into `kv`.
  static __device__ void stageKeyValueTile(uint16_t *kv, const uint16_t *k, const uint16_t *v, int jt) {
    tlfa::stageRows<D, tlfa::kRows, KS>(kv, k, (int64_t)jt * tlfa::kRows, S);
    tlfa::stageRows<D, tlfa::kRows, KS>(kv + kTile, v, (int64_t)jt * tlfa::kRows, S);
  }

  // Scores of the warp's rows (queries q0 + 0..15) against keys j0 + 0..63,
  // in base-2 units; invisible ones -inf.
  static __device__ void scaleAndMask(float (&s)[8][4], int64_t q0, int64_t j0, float scaleLog2) {
    const int g = tlfa::laneId() / 4, t = tlfa::laneId() % 4;
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t key = j0 + n * 8 + 2 * t + (i & 1), query = q0 + g + 8 * (i / 2);
        s[n][i] = key >= S || (CAUSAL && key > query) ? -TL_INF : s[n][i] * scaleLog2;
      }
  }

  // The warp's scores (its 16 rows of `qs`, queries q0 + 0..15) against key
  // tile `jt` in `ks`, scaled and masked.
  static __device__ void scoreTile(float (&s)[8][4], const uint16_t *qs, const uint16_t *ks, int64_t q0, int jt,
                                   float scaleLog2) {
    tlfa::clear(s);
    tlfa::mmaRows<D, 8, P, P>(s, qs, ks);
    scaleAndMask(s, q0, (int64_t)jt * tlfa::kRows, scaleLog2);
  }

  static __device__ void forward(uint16_t *o, float *lse, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                 float scale) {
    extern __shared__ __align__(16) uint16_t tlfaTiles[];
    uint16_t *qs = tlfaTiles, *kvs = tlfaTiles + kTile;  // buffer b: K at kvs + 2b kTile, V after it
    const int bh = blockIdx.x / kQueryTiles, qt = blockIdx.x % kQueryTiles, b = bh / H, h = bh % H;
    const int64_t kvBase = kvHead(b, h / G), qBase = qHead(b, h), q0 = (int64_t)qt * tlfa::kRows;
    const int warp = tlfa::warpId(), g = tlfa::laneId() / 4, t = tlfa::laneId() % 4;
    const int tilesToRun = keyTiles(qt);
    auto stageKeys = [&](int jt) { stageKeyValueTile(kvs + 2 * kTile * (jt % 2), k + kvBase, v + kvBase, jt); };
    tlfa::stageRows<D, tlfa::kRows, QS>(qs, q + qBase, q0, T);
    stageKeys(0);
    cpAsyncCommit();
    float acc[D / 8][4], m[2] = {-TL_INF, -TL_INF}, l[2] = {0.0f, 0.0f}, s[8][4];
    tlfa::clear(acc);
    const float scaleLog2 = scale * TLFA_LOG2E;
    for (int jt = 0; jt < tilesToRun; ++jt) {
      tlfa::awaitStep(jt, tilesToRun, stageKeys);
      const uint16_t *ks = kvs + 2 * kTile * (jt % 2), *vs = ks + kTile;
      scoreTile(s, qs + warp * 16 * P, ks, q0 + warp * 16, jt, scaleLog2);
      // Online softmax for rows g and g + 8: every tile has a visible key for
      // every row (key 0 of tile 0, the diagonal's first key after), so m is finite.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -TL_INF;
#pragma unroll
        for (int n = 0; n < 8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
        const float mNew = fmaxf(m[r], tlfa::quadMax(mx)), corr = exp2f(m[r] - mNew);
        m[r] = mNew;
        l[r] *= corr;  // this lane's part of the row sum; the quad adds them up at the end
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          acc[n][2 * r] *= corr;
          acc[n][2 * r + 1] *= corr;
        }
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
          for (int i = 2 * r; i < 2 * r + 2; ++i) {
            s[n][i] = exp2f(s[n][i] - mNew);
            l[r] += s[n][i];
          }
      }
      tlfa::mmaAccumulators<tlfa::kRows, D / 8, P>(acc, s, vs);
      __syncthreads();  // the buffer is refilled next
    }
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[r] = tlfa::quadSum(l[r]);
      inv[r] = 1.0f / l[r];
      const int64_t row = q0 + warp * 16 + g + 8 * r;
      if (t == 0 && row < T) lse[(int64_t)bh * T + row] = (m[r] + log2f(l[r])) * TLFA_LN2;
    }
    tlfa::storeRows<D / 8, QS>(o + qBase, acc, q0 + warp * 16, T, inv);
  }

  // The first (largest) key tile that adds to the dQ of query tile `it`
  // (BQ rows): key tiles add to a query tile's dQ from the last to the
  // first, and the grid runs a group's key tiles in that order, so that a
  // block only ever waits for blocks dispatched before it.
  static __device__ int firstAdder(int it) {
    const int lastVisible = (it * BQ + BQ - 1) / tlfa::kRows;  // the key tile of the tile's last query
    return CAUSAL && lastVisible < kKeyTiles ? lastVisible : kKeyTiles - 1;
  }

  static constexpr int kQueryTilesOfBQ = (T + BQ - 1) / BQ;

  // dK = scale dS^T Q and dV = P^T dO for 64 keys a block, over the query
  // tiles of every query head of its group, and dQ = scale dS K in the same
  // pass (5 matmuls; a separate dQ kernel would recompute S and dP). Each
  // block adds its keys' part of dQ to an f32 sum (dqSum, [B, H, T, D]) in a
  // fixed order, so dQ is the same bits on every run, without atomics:
  // `turns` (an int for each query tile of BQ rows of every head, zero
  // before the launch) counts the parts added so far; the first adder
  // stores, the last (key tile 0) writes dq in bf16.
  static __device__ void gradKeyValueQuery(uint16_t *dk, uint16_t *dv, uint16_t *dq, const uint16_t *dout,
                                           const uint16_t *q, const uint16_t *k, const uint16_t *v, const float *lse,
                                           const float *delta, float *dqSum, int *turns, float scale) {
    extern __shared__ __align__(16) uint16_t tlfaTiles[];
    uint16_t *ks = tlfaTiles, *vs = tlfaTiles + kTile, *qdos = tlfaTiles + 2 * kTile;  // buffer b: Q, dO at qdos + 2b kQTile
    float *stats = (float *)(qdos + 4 * kQTile);                           // buffer b: lse, delta at stats + 2b BQ
    uint16_t *dss = (uint16_t *)(stats + 4 * BQ);                          // dS, [query][key]
    const int bk = blockIdx.x / kKeyTiles, kt = kKeyTiles - 1 - blockIdx.x % kKeyTiles, b = bk / KV, kvh = bk % KV;
    const int64_t kvBase = kvHead(b, kvh), k0 = (int64_t)kt * tlfa::kRows;
    const int warp = tlfa::warpId(), g = tlfa::laneId() / 4, t = tlfa::laneId() % 4;
    // Query tiles of BQ from the first that sees this block's keys, for each query head of the group.
    const int first = CAUSAL ? (int)(k0 / BQ) : 0, perHead = kQueryTilesOfBQ - first, steps = G * perHead;
    auto stage = [&](int step) {
      const int buffer = step % 2;
      const int hq = kvh * G + step / perHead;
      const int64_t rows = ((int64_t)b * H + hq) * T, i0 = (int64_t)(first + step % perHead) * BQ;
      tlfa::stageRows<D, BQ, QS>(qdos + 2 * kQTile * buffer, q + qHead(b, hq), i0, T);
      tlfa::stageRows<D, BQ, QS>(qdos + 2 * kQTile * buffer + kQTile, dout + qHead(b, hq), i0, T);
      float *st = stats + 2 * BQ * buffer;
      for (int e = threadIdx.x; e < BQ; e += blockDim.x) {
        st[e] = i0 + e < T ? lse[rows + i0 + e] * TLFA_LOG2E : TL_INF;  // past T: probability 0
        st[BQ + e] = i0 + e < T ? delta[rows + i0 + e] : 0.0f;
      }
    };
    tlfa::stageRows<D, tlfa::kRows, KS>(ks, k + kvBase, k0, S);
    tlfa::stageRows<D, tlfa::kRows, KS>(vs, v + kvBase, k0, S);
    stage(0);
    cpAsyncCommit();
    float dka[D / 8][4], dva[D / 8][4], p[BQ / 8][4], ds[BQ / 8][4];
    tlfa::clear(dka);
    tlfa::clear(dva);
    const float scaleLog2 = scale * TLFA_LOG2E;
    for (int step = 0; step < steps; ++step) {
      tlfa::awaitStep(step, steps, stage);
      const uint16_t *qs = qdos + 2 * kQTile * (step % 2), *dos = qs + kQTile;
      const float *ls = stats + 2 * BQ * (step % 2), *dls = ls + BQ;
      const int it = first + step % perHead, hq = kvh * G + step / perHead;
      const int64_t i0 = (int64_t)it * BQ;
      tlfa::clear(p);
      tlfa::clear(ds);
      tlfa::mmaRows<D, BQ / 8, P, P>(p, ks + warp * 16 * P, qs);    // S^T: keys x queries
      tlfa::mmaRows<D, BQ / 8, P, P>(ds, vs + warp * 16 * P, dos);  // dP^T = V dO^T
#pragma unroll
      for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int c = n * 8 + 2 * t + (i & 1);
          const int64_t key = k0 + warp * 16 + g + 8 * (i / 2);
          const float pr = CAUSAL && i0 + c < key ? 0.0f : exp2f(p[n][i] * scaleLog2 - ls[c]);
          p[n][i] = pr;
          ds[n][i] = pr * (ds[n][i] - dls[c]);
        }
      tlfa::mmaAccumulators<BQ, D / 8, P>(dva, p, dos);
      tlfa::mmaAccumulators<BQ, D / 8, P>(dka, ds, qs);
      // dQ: a query's keys span the 4 warps, so dS goes through shared memory (as bf16, as dK uses it).
      {
#pragma unroll
        for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
          for (int i = 0; i < 4; ++i) dss[(n * 8 + 2 * t + (i & 1)) * PS + warp * 16 + g + 8 * (i / 2)] = f2bf(ds[n][i]);
        __syncthreads();
        // A warp's part: 16 query rows x D / C columns.
        constexpr int R = BQ / 16, C = 4 / R, NT = D / 8 / C;
        const int rg = warp % R, c0 = warp / R * (D / C);
        float dqa[NT][4];
        tlfa::clear(dqa);
        tlfa::mmaRows<tlfa::kRows, NT, PS, P, true>(dqa, dss + rg * 16 * PS, ks + c0);
        int *turn = turns + ((int64_t)b * H + hq) * kQueryTilesOfBQ + it;
        const int before = firstAdder(it) - kt;  // parts of this tile's dQ added already
        if (threadIdx.x == 0)
          while (loadAcquire(turn) != before) spinPause();
        __syncthreads();
        const int64_t rows = ((int64_t)b * H + hq) * T;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t row = i0 + rg * 16 + g + 8 * r;
          if (row >= T) continue;
#pragma unroll
          for (int n = 0; n < NT; ++n) {
            const int col = c0 + n * 8 + 2 * t;
            float *sum = dqSum + (rows + row) * D + col;
            float x0 = dqa[n][2 * r], x1 = dqa[n][2 * r + 1];
            if (before > 0) {
              x0 += __ldcg(sum);
              x1 += __ldcg(sum + 1);
            }
            if (kt == 0) {
              *(uint32_t *)(dq + qHead(b, hq) + row * QS + col) = packBf16x2(x0 * scale, x1 * scale);
            } else {
              __stcg(sum, x0);
              __stcg(sum + 1, x1);
            }
          }
        }
        __syncthreads();
        if (kt > 0 && threadIdx.x == 0) {
          __threadfence();
          storeRelease(turn, before + 1);
        }
      }
      // The buffers and the dS tile are refilled next: the barrier above covers them.
    }
    const float ones[2] = {1.0f, 1.0f}, scales[2] = {scale, scale};
    tlfa::storeRows<D / 8, KS>(dk + kvBase, dka, k0 + warp * 16, S, scales);
    tlfa::storeRows<D / 8, KS>(dv + kvBase, dva, k0 + warp * 16, S, ones);
  }
};
