// compiler/Codegen/Library/cpu_library.h: C++ the CPU kernels are built on,
// emitted once after cpu_prelude.h, before the kernels (embedded into tlc at
// build time). Generated CPU bodies instantiate these templates with the
// op's static shapes, so the C++ compiler sees constant trip counts and
// vectorises the inner loops (contiguous, `#pragma omp simd`, no index
// divisions). Plain C++ and OpenMP only: it is compiled by the system
// compiler at load time, and on its own in CI (tests/kernels/).

// exp without a libm call, so loops over it vectorise: Cody-Waite reduction
// to |r| <= ln2/2 and Cephes' degree-6 polynomial (relative error ~1e-7);
// exp(-inf) = 0, exp(+inf) = inf, NaN stays NaN.
TL_INLINE float tl_expf(float x) {
  // Comparisons, not fminf/fmaxf: GCC vectorises those only under -ffast-math.
  const float xc = x < -87.0f ? -87.0f : x > 88.5f ? 88.5f : x;
  const float n = rintf(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, 4);
  y *= scale;
  y = x < -87.0f ? 0.0f : y;
  y = x > 88.5f ? TL_INF : y;
  return x != x ? x : y;
}
#define expf tl_expf

TL_INLINE float tl_ld(const float *p, int64_t i) { return p[i]; }
TL_INLINE float tl_ld(const uint16_t *p, int64_t i) { return bf2f(p[i]); }
TL_INLINE void tl_st(float *p, int64_t i, float v) { p[i] = v; }
TL_INLINE void tl_st(uint16_t *p, int64_t i, float v) { p[i] = f2bf(v); }
// 16 floats: one AVX-512 register (two AVX ones). Accumulators of this type
// stay in registers across a loop, where an array would go through memory.
typedef float tl_vf __attribute__((vector_size(64)));
template <class T> TL_INLINE T tl_min(T a, T b) { return a < b ? a : b; }
template <class T> TL_INLINE T tl_max(T a, T b) { return a > b ? a : b; }

// Attention, FlashAttention-2 style. q, o, dq: [B, H, T, D]; k, v, dk, dv:
// [B, KV, S, D] (query head h reads KV head h / (H / KV): no copies), B the
// run's micro-batch (a run-time argument, the rest compile-time);
// lse, delta: [B, H, T]. With BTHD, q, o, dq are [B, T, H, D] and k, v, dk,
// dv [B, S, KV, D]: a head's rows are H * D (KV * D) apart. Causal: query i sees keys j <= i, and key tiles
// past a query tile's last row are never visited. Tiles are copied to
// float, K and V transposed where the inner loop runs over keys.
template <int64_t H, int64_t KV, int64_t T, int64_t S, int64_t D, bool CAUSAL, bool BTHD = false>
struct TlAttention {
  static constexpr int64_t BQ = 32, BK = 64, G = H / KV;
  static constexpr int64_t QTILES = (T + BQ - 1) / BQ, KTILES = (S + BK - 1) / BK;
  // Element offsets of row 0 of query head h (key head kvh) of batch row b,
  // and the distance between a head's rows.
  static constexpr int64_t QS = BTHD ? H * D : D, KS = BTHD ? KV * D : D;
  static int64_t qHead(int64_t b, int64_t h) { return BTHD ? (b * T * H + h) * D : (b * H + h) * T * D; }
  static int64_t kvHead(int64_t b, int64_t kvh) { return BTHD ? (b * S * KV + kvh) * D : (b * KV + kvh) * S * D; }

  // Rows [j0, j0 + n) of one head (RS elements apart from `base`): row-major
  // (`rows`, D wide) and/or transposed (`cols`, BK wide); rows past n are zero.
  template <int64_t RS, class TK>
  static void loadKeys(const TK *__restrict__ k, int64_t base, int64_t j0, int64_t n,
                       float (*__restrict__ rows)[D], float (*__restrict__ cols)[BK]) {
    for (int64_t j = 0; j < BK; ++j)
      for (int64_t d = 0; d < D; ++d) {
        const float x = j < n ? tl_ld(k, base + (j0 + j) * RS + d) : 0.0f;
        if (rows) rows[j][d] = x;
        if (cols) cols[d][j] = x;
      }
  }

  // out[j] = sum_d a[d] * cols[d][j] for the BK columns (out 64-byte aligned).
  static inline void rowTimesCols(const float *__restrict__ a, const float (*__restrict__ cols)[BK],
                                  float *__restrict__ out) {
    tl_vf acc[BK / 16] = {};
    for (int64_t d = 0; d < D; ++d) {
      const float x = a[d];
#pragma GCC unroll 8
      for (int64_t u = 0; u < BK / 16; ++u) acc[u] += x * *(const tl_vf *)&cols[d][16 * u];
    }
#pragma GCC unroll 8
    for (int64_t u = 0; u < BK / 16; ++u) *(tl_vf *)&out[16 * u] = acc[u];
  }

  // acc[d] += sum_{j in [lo, hi)} w[j] * rows[j][d]; acc and rows 64-byte aligned.
  static inline void addWeightedRows(float *__restrict__ acc, const float *__restrict__ w,
                                     const float (*__restrict__ rows)[D], int64_t lo, int64_t hi) {
    if constexpr (D % 16 == 0 && D <= 128) {
      tl_vf v[D / 16];
#pragma GCC unroll 8
      for (int64_t u = 0; u < D / 16; ++u) v[u] = *(const tl_vf *)&acc[16 * u];
      for (int64_t j = lo; j < hi; ++j) {
        const float x = w[j];
#pragma GCC unroll 8
        for (int64_t u = 0; u < D / 16; ++u) v[u] += x * *(const tl_vf *)&rows[j][16 * u];
      }
#pragma GCC unroll 8
      for (int64_t u = 0; u < D / 16; ++u) *(tl_vf *)&acc[16 * u] = v[u];
    } else {
      for (int64_t j = lo; j < hi; ++j) {
        const float x = w[j];
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) acc[d] += x * rows[j][d];
      }
    }
  }

  template <class TO, class TL, class TQ, class TK, class TV>
  static void forward(int64_t B, TO *__restrict__ o, TL *__restrict__ lse, const TQ *__restrict__ q,
                      const TK *__restrict__ k, const TV *__restrict__ v, float scale) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t item = 0; item < B * H * QTILES; ++item) {
      // Longest (last, under a causal mask) query tiles first.
      const int64_t qt = QTILES - 1 - item % QTILES, bh = item / QTILES;
      const int64_t i0 = qt * BQ, nq = tl_min(BQ, T - i0);
      const int64_t qBase = qHead(bh / H, bh % H) + i0 * QS, kvBase = kvHead(bh / H, (bh % H) / G);
      alignas(64) float qs[BQ][D], acc[BQ][D], kc[D][BK], vr[BK][D], s[BK];
      float m[BQ], l[BQ];
      for (int64_t r = 0; r < nq; ++r) {
        for (int64_t d = 0; d < D; ++d) {
          qs[r][d] = tl_ld(q, qBase + r * QS + d) * scale;
          acc[r][d] = 0.0f;
        }
        m[r] = -TL_INF;
        l[r] = 0.0f;
      }
      const int64_t keyEnd = CAUSAL ? tl_min(S, i0 + nq) : S;
      for (int64_t j0 = 0; j0 < keyEnd; j0 += BK) {
        const int64_t nk = tl_min(BK, keyEnd - j0);
        loadKeys<KS>(k, kvBase, j0, nk, nullptr, kc);
        loadKeys<KS>(v, kvBase, j0, nk, vr, nullptr);
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t visible = CAUSAL ? tl_min(nk, i0 + r + 1 - j0) : nk;
          if (visible <= 0) continue;
          rowTimesCols(qs[r], kc, s);
          float mx = m[r];
#pragma omp simd reduction(max : mx)
          for (int64_t j = 0; j < BK; ++j) {
            s[j] = j < visible ? s[j] : -TL_INF;
            mx = s[j] > mx ? s[j] : mx;
          }
          const float corr = expf(m[r] - mx);
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < BK; ++j) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
          }
          l[r] = l[r] * corr + sum;
          m[r] = mx;
          float *__restrict__ a = acc[r];
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) a[d] *= corr;
          addWeightedRows(a, s, vr, 0, visible);
        }
      }
      for (int64_t r = 0; r < nq; ++r) {
        const float inv = 1.0f / l[r];
        for (int64_t d = 0; d < D; ++d) tl_st(o, qBase + r * QS + d, acc[r][d] * inv);
        tl_st(lse, bh * T + i0 + r, m[r] + logf(l[r]));
      }
    }
  }

  // dQ = scale * dS K with dS = P * (dO V^T - delta), P recomputed from lse;
  // work items are (batch, head, query tile).
  template <class TDQ, class TDO, class TQ, class TK, class TV, class TL>
  static void gradQuery(int64_t B, TDQ *__restrict__ dq, const TDO *__restrict__ dout, const TQ *__restrict__ q,
                        const TK *__restrict__ k, const TV *__restrict__ v, const TL *__restrict__ lse,
                        const float *__restrict__ delta, float scale) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t item = 0; item < B * H * QTILES; ++item) {
      const int64_t qt = QTILES - 1 - item % QTILES, bh = item / QTILES;
      const int64_t i0 = qt * BQ, nq = tl_min(BQ, T - i0);
      const int64_t qBase = qHead(bh / H, bh % H) + i0 * QS, kvBase = kvHead(bh / H, (bh % H) / G);
      alignas(64) float qs[BQ][D], dos[BQ][D], acc[BQ][D], kr[BK][D], kc[D][BK], vc[D][BK], s[BK], dp[BK];
      float L[BQ], dl[BQ];
      for (int64_t r = 0; r < nq; ++r) {
        for (int64_t d = 0; d < D; ++d) {
          qs[r][d] = tl_ld(q, qBase + r * QS + d) * scale;
          dos[r][d] = tl_ld(dout, qBase + r * QS + d);
          acc[r][d] = 0.0f;
        }
        L[r] = tl_ld(lse, bh * T + i0 + r);
        dl[r] = delta[bh * T + i0 + r];
      }
      const int64_t keyEnd = CAUSAL ? tl_min(S, i0 + nq) : S;
      for (int64_t j0 = 0; j0 < keyEnd; j0 += BK) {
        const int64_t nk = tl_min(BK, keyEnd - j0);
        loadKeys<KS>(k, kvBase, j0, nk, kr, kc);
        loadKeys<KS>(v, kvBase, j0, nk, nullptr, vc);
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t visible = CAUSAL ? tl_min(nk, i0 + r + 1 - j0) : nk;
          if (visible <= 0) continue;
          rowTimesCols(qs[r], kc, s);
          rowTimesCols(dos[r], vc, dp);
          const float lr = L[r], dlr = dl[r];
#pragma omp simd
          for (int64_t j = 0; j < BK; ++j) {
            const float p = expf(j < visible ? s[j] - lr : -TL_INF);  // no branch: vectorises
            s[j] = p * (dp[j] - dlr) * scale;
          }
          addWeightedRows(acc[r], s, kr, 0, visible);
        }
      }
      for (int64_t r = 0; r < nq; ++r)
        for (int64_t d = 0; d < D; ++d) tl_st(dq, qBase + r * QS + d, acc[r][d]);
    }
  }

  // dV = P^T dO and dK = scale * dS^T Q over the G query heads sharing the
  // KV head; work items are (batch, KV head, key tile), so no two threads
  // write the same rows.
  template <class TDK, class TDV, class TDO, class TQ, class TK, class TV, class TL>
  static void gradKeyValue(int64_t B, TDK *__restrict__ dk, TDV *__restrict__ dv, const TDO *__restrict__ dout,
                           const TQ *__restrict__ q, const TK *__restrict__ k, const TV *__restrict__ v,
                           const TL *__restrict__ lse, const float *__restrict__ delta, float scale) {
    static_assert(BQ <= BK, "query tiles are loaded BK wide");
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t item = 0; item < B * KV * KTILES; ++item) {
      const int64_t kt = item % KTILES, bk = item / KTILES, bb = bk / KV, kvh = bk % KV;
      const int64_t j0 = kt * BK, nk = tl_min(BK, S - j0), kBase = kvHead(bb, kvh) + j0 * KS;
      alignas(64) float ks[BK][D], vs[BK][D], dka[BK][D], dva[BK][D];
      alignas(64) float qr[BK][D], qc[D][BK], dor[BK][D], doc[D][BK], s[BK], dp[BK], L[BK], dl[BK];
      for (int64_t j = 0; j < nk; ++j)
        for (int64_t d = 0; d < D; ++d) {
          ks[j][d] = tl_ld(k, kBase + j * KS + d) * scale;
          vs[j][d] = tl_ld(v, kBase + j * KS + d);
          dka[j][d] = 0.0f;
          dva[j][d] = 0.0f;
        }
      for (int64_t g = 0; g < G; ++g) {
        const int64_t bh = bb * H + kvh * G + g, qBase = qHead(bb, kvh * G + g);
        // Under a causal mask, query tiles ending before this key tile see none of it.
        for (int64_t i0 = CAUSAL ? j0 / BK * BK : 0; i0 < T; i0 += BK) {
          const int64_t nq = tl_min(BK, T - i0);
          loadKeys<QS>(q, qBase, i0, nq, qr, qc);
          loadKeys<QS>(dout, qBase, i0, nq, dor, doc);
          for (int64_t r = 0; r < BK; ++r) {
            L[r] = r < nq ? tl_ld(lse, bh * T + i0 + r) : 0.0f;
            dl[r] = r < nq ? delta[bh * T + i0 + r] : 0.0f;
          }
          for (int64_t j = 0; j < nk; ++j) {
            // Queries i0 + r with r in [first, nq) see key j0 + j.
            const int64_t first = CAUSAL ? tl_max<int64_t>(0, j0 + j - i0) : 0;
            if (first >= nq) continue;
            rowTimesCols(ks[j], qc, s);
            rowTimesCols(vs[j], doc, dp);
#pragma omp simd
            for (int64_t r = 0; r < BK; ++r) {
              const float p = expf(r >= first && r < nq ? s[r] - L[r] : -TL_INF);
              s[r] = p;
              dp[r] = p * (dp[r] - dl[r]) * scale;
            }
            addWeightedRows(dva[j], s, dor, first, nq);
            addWeightedRows(dka[j], dp, qr, first, nq);
          }
        }
      }
      for (int64_t j = 0; j < nk; ++j)
        for (int64_t d = 0; d < D; ++d) {
          tl_st(dk, kBase + j * KS + d, dka[j][d]);
          tl_st(dv, kBase + j * KS + d, dva[j][d]);
        }
    }
  }
};
