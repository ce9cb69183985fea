// CUDA kernels of patchmatch and window_search (spec: docs/ARCHITECTURE.md).
//
// One warp per source pixel (the lanes split the channels) when C >= 32, else one thread per
// pixel. Features are channels-last (B, H, W, C) so that the C values of a pixel are contiguous
// and read with 16-byte vector loads (4 floats or 8 halves) when C allows; float16 inputs are
// accumulated in float32. Each propagation step is one launch reading the
// previous state and writing the other buffer (synchronous, as the CPU version and the
// reference), so the fields match the CPU ones up to float rounding of the scores.
#include "patchmatch.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_fp16.h>

#include <cstdlib>
#include <limits>
#include <string>

namespace deepexemplar {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxRadii = 32;

// Partial inner product of two C-vectors: the vector elements lane, lane + step, ... (step 1:
// the whole product; step 32: one lane's share when a warp scores a pixel). VEC = 16-byte
// loads (4 floats or 8 halves; requires C % (16 / sizeof(T)) == 0 and aligned rows).
template <typename T, bool VEC>
__device__ __forceinline__ float dot(const T* __restrict__ a, const T* __restrict__ b, int c,
                                     int lane, int step);

template <>
__device__ __forceinline__ float dot<float, true>(const float* __restrict__ a,
                                                  const float* __restrict__ b, int c, int lane,
                                                  int step) {
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float acc0 = 0.f, acc1 = 0.f;
  for (int i = lane; i < c / 4; i += step) {
    const float4 x = __ldg(a4 + i), y = __ldg(b4 + i);
    acc0 = fmaf(x.x, y.x, acc0);
    acc1 = fmaf(x.y, y.y, acc1);
    acc0 = fmaf(x.z, y.z, acc0);
    acc1 = fmaf(x.w, y.w, acc1);
  }
  return acc0 + acc1;
}

template <>
__device__ __forceinline__ float dot<float, false>(const float* __restrict__ a,
                                                   const float* __restrict__ b, int c, int lane,
                                                   int step) {
  float acc = 0.f;
  for (int i = lane; i < c; i += step) acc = fmaf(__ldg(a + i), __ldg(b + i), acc);
  return acc;
}

template <>
__device__ __forceinline__ float dot<at::Half, true>(const at::Half* __restrict__ a,
                                                     const at::Half* __restrict__ b, int c,
                                                     int lane, int step) {
  const uint4* a8 = reinterpret_cast<const uint4*>(a);
  const uint4* b8 = reinterpret_cast<const uint4*>(b);
  float acc0 = 0.f, acc1 = 0.f;
  for (int i = lane; i < c / 8; i += step) {
    const uint4 x = __ldg(a8 + i), y = __ldg(b8 + i);
    const __half2* xh = reinterpret_cast<const __half2*>(&x);
    const __half2* yh = reinterpret_cast<const __half2*>(&y);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 xf = __half22float2(xh[k]), yf = __half22float2(yh[k]);
      acc0 = fmaf(xf.x, yf.x, acc0);
      acc1 = fmaf(xf.y, yf.y, acc1);
    }
  }
  return acc0 + acc1;
}

template <>
__device__ __forceinline__ float dot<at::Half, false>(const at::Half* __restrict__ a,
                                                      const at::Half* __restrict__ b, int c,
                                                      int lane, int step) {
  const __half* ah = reinterpret_cast<const __half*>(a);
  const __half* bh = reinterpret_cast<const __half*>(b);
  float acc = 0.f;
  for (int i = lane; i < c; i += step) acc = fmaf(__half2float(ah[i]), __half2float(bh[i]), acc);
  return acc;
}

// Patch score of the spec for source pixel (py, px) of batch element bi and target pixel
// (qy, qx). LANES = 1: one thread computes it; LANES = 32: the lanes of a warp split the
// channels and every lane returns the full score (butterfly reduction).
template <typename T, bool VEC, int LANES>
__device__ __forceinline__ float patch_score(const T* __restrict__ src, const T* __restrict__ tgt,
                                             const MatchGeometry& g, int bi, int py, int px,
                                             int qy, int qx, int lane) {
  const int r = g.radius, c = g.channels;
  const T* a = src + int64_t(g.source_batched * bi) * g.ha * g.wa * c;
  const T* b = tgt + int64_t(g.target_batched * bi) * g.hb * g.wb * c;
  float sum = 0.f;
  for (int dy = -r; dy <= r; ++dy) {
    const T* arow = a + int64_t(clamp_index(py + dy, g.ha)) * g.wa * c;
    const T* brow = b + int64_t(clamp_index(qy + dy, g.hb)) * g.wb * c;
    for (int dx = -r; dx <= r; ++dx) {
      sum += dot<T, VEC>(arow + int64_t(clamp_index(px + dx, g.wa)) * c,
                         brow + int64_t(clamp_index(qx + dx, g.wb)) * c, c, lane, LANES);
    }
  }
  if constexpr (LANES > 1) {
    // Xor butterfly: each step adds the same two values in both lanes of a pair (a + b == b + a
    // exactly), so every lane ends with the same bits and the lanes never diverge.
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset /= 2)
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  }
  return sum / float((2 * r + 1) * (2 * r + 1));
}

struct PassArgs {
  int jump;       // propagation distance, 0 = none
  int pass;       // index of this pass since the start
  int period;     // passes per iteration (pass - period used the same jump)
  int n_radii;    // random-search radii run after the propagation (0 = none)
  int radii[kMaxRadii];
  uint32_t seed, level, t, first_random_step;
};

// Clamp the start field into the target and score it, in place.
template <typename T, bool VEC, int LANES>
__global__ void start_kernel(const T* __restrict__ src, const T* __restrict__ tgt,
                             MatchGeometry g, int32_t* __restrict__ nnf,
                             float* __restrict__ best, int64_t n_pix) {
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t idx = thread / LANES;  // LANES divides the block size: a warp exits together
  const int lane = int(thread % LANES);
  if (idx >= n_pix) return;
  const int64_t plane = int64_t(g.ha) * g.wa;
  const int bi = int(idx / plane), py = int((idx % plane) / g.wa), px = int(idx % g.wa);
  const int qy = clamp_index(nnf[2 * idx], g.hb), qx = clamp_index(nnf[2 * idx + 1], g.wb);
  const float s = patch_score<T, VEC, LANES>(src, tgt, g, bi, py, px, qy, qx, lane);
  if (lane == 0) {
    nnf[2 * idx] = qy;
    nnf[2 * idx + 1] = qx;
    best[idx] = s;
  }
}

// One synchronous propagation step (+ the random search of the last step of an iteration).
// Candidates that cannot be strictly better are skipped (as in the C++ version): one equal to
// the current match or an earlier candidate, and one tried an iteration ago from a neighbour
// whose match has not changed since (stamp = last pass that changed a pixel's match).
template <typename T, bool VEC, int LANES>
__global__ void pass_kernel(const T* __restrict__ src, const T* __restrict__ tgt,
                            MatchGeometry g, PassArgs args, const int32_t* __restrict__ nnf_in,
                            const float* __restrict__ best_in,
                            const int32_t* __restrict__ stamp_in, int32_t* __restrict__ nnf_out,
                            float* __restrict__ best_out, int32_t* __restrict__ stamp_out,
                            int64_t n_pix) {
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t idx = thread / LANES;  // LANES divides the block size: a warp exits together
  const int lane = int(thread % LANES);
  if (idx >= n_pix) return;
  const int64_t plane = int64_t(g.ha) * g.wa;
  const int bi = int(idx / plane), py = int((idx % plane) / g.wa), px = int(idx % g.wa);
  const int y0 = nnf_in[2 * idx], x0 = nnf_in[2 * idx + 1];
  int cy = y0, cx = x0;
  float best = best_in[idx];
  // The loops are unrolled so that the candidate arrays stay in registers.
  int cand_y[4], cand_x[4];
  bool cand_ok[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int ny = py + (k == 2 ? -args.jump : (k == 3 ? args.jump : 0));
    const int nx = px + (k == 0 ? -args.jump : (k == 1 ? args.jump : 0));
    cand_ok[k] = args.jump > 0 && ny >= 0 && ny < g.ha && nx >= 0 && nx < g.wa;
    const int64_t n =  // the pixel itself stands in for a neighbour outside the image
        int64_t(bi) * plane + int64_t(cand_ok[k] ? ny : py) * g.wa + (cand_ok[k] ? nx : px);
    cand_y[k] = clamp_index(nnf_in[2 * n] + (py - ny), g.hb);
    cand_x[k] = clamp_index(nnf_in[2 * n + 1] + (px - nx), g.wb);
    bool duplicate = cand_y[k] == y0 && cand_x[k] == x0;
#pragma unroll
    for (int m = 0; m < k; ++m)
      duplicate |= cand_ok[m] && cand_y[m] == cand_y[k] && cand_x[m] == cand_x[k];
    if (!cand_ok[k] || duplicate || stamp_in[n] < args.pass - args.period) continue;
    const float s = patch_score<T, VEC, LANES>(src, tgt, g, bi, py, px, cand_y[k], cand_x[k], lane);
    if (s > best) {
      best = s;
      cy = cand_y[k];
      cx = cand_x[k];
    }
  }
  for (int i = 0; i < args.n_radii; ++i) {
    const uint32_t span = uint32_t(2 * args.radii[i] + 1);
    const uint32_t step = args.first_random_step + uint32_t(i);
    const uint32_t hy = counter_hash(args.seed, args.level, args.t, step, uint32_t(idx), 0u);
    const uint32_t hx = counter_hash(args.seed, args.level, args.t, step, uint32_t(idx), 1u);
    const int oy = int(hy % span) - args.radii[i];
    const int ox = int(hx % span) - args.radii[i];
    const int qy = clamp_index(cy + oy, g.hb), qx = clamp_index(cx + ox, g.wb);
    if (qy == cy && qx == cx) continue;
    const float s = patch_score<T, VEC, LANES>(src, tgt, g, bi, py, px, qy, qx, lane);
    if (s > best) {
      best = s;
      cy = qy;
      cx = qx;
    }
  }
  if (lane == 0) {
    nnf_out[2 * idx] = cy;
    nnf_out[2 * idx + 1] = cx;
    best_out[idx] = best;
    stamp_out[idx] = (cy != y0 || cx != x0) ? args.pass : stamp_in[idx];
  }
}

// Exhaustive argmax over q in clampB(clampB(start(p)) + [-R, R]^2), row-major, first maximum.
template <typename T, bool VEC, int LANES>
__global__ void window_kernel(const T* __restrict__ src, const T* __restrict__ tgt,
                              MatchGeometry g, int search_radius,
                              const int32_t* __restrict__ start, int32_t* __restrict__ nnf,
                              float* __restrict__ best, int64_t n_pix) {
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t idx = thread / LANES;  // LANES divides the block size: a warp exits together
  const int lane = int(thread % LANES);
  if (idx >= n_pix) return;
  const int64_t plane = int64_t(g.ha) * g.wa;
  const int bi = int(idx / plane), py = int((idx % plane) / g.wa), px = int(idx % g.wa);
  const int sy = clamp_index(start[2 * idx], g.hb), sx = clamp_index(start[2 * idx + 1], g.wb);
  const int y0 = clamp_index(sy - search_radius, g.hb), y1 = clamp_index(sy + search_radius, g.hb);
  const int x0 = clamp_index(sx - search_radius, g.wb), x1 = clamp_index(sx + search_radius, g.wb);
  float top = -std::numeric_limits<float>::infinity();
  int ty = y0, tx = x0;
  for (int qy = y0; qy <= y1; ++qy) {
    for (int qx = x0; qx <= x1; ++qx) {
      const float s = patch_score<T, VEC, LANES>(src, tgt, g, bi, py, px, qy, qx, lane);
      if (s > top) {
        top = s;
        ty = qy;
        tx = qx;
      }
    }
  }
  if (lane == 0) {
    nnf[2 * idx] = ty;
    nnf[2 * idx + 1] = tx;
    best[idx] = top;
  }
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

// Whether 16-byte loads are valid: C a multiple of the vector width and aligned base pointers.
template <typename T>
bool can_vectorize(const at::Tensor& a, const at::Tensor& b, int channels) {
  constexpr int width = 16 / sizeof(T);
  return channels % width == 0 && reinterpret_cast<uintptr_t>(a.data_ptr()) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b.data_ptr()) % 16 == 0;
}

void check_cuda_inputs(const char* op, const PreparedInputs& in) {
  TORCH_CHECK(in.source.is_cuda(), op, ": source must be a CUDA tensor, got ",
              in.source.device());
  TORCH_CHECK(in.source.scalar_type() == at::kFloat || in.source.scalar_type() == at::kHalf, op,
              ": source/target must be float32 or float16 on CUDA, got ",
              in.source.scalar_type());
  TORCH_CHECK(in.source.is_contiguous() && in.target.is_contiguous() && in.start.is_contiguous(),
              op, ": internal channels-last copies must be contiguous");
}

template <typename T, bool VEC, int LANES>
void run_patchmatch(const PreparedInputs& in, at::Tensor nnf[2], at::Tensor best[2],
                    at::Tensor stamp[2], int& cur,
                    int64_t iterations, at::IntArrayRef jumps,
                    const std::vector<int32_t>& radii, int64_t seed, int64_t level) {
  const MatchGeometry g = in.geo;
  const int64_t n_pix = int64_t(g.batch) * g.ha * g.wa;
  const T* src = in.source.data_ptr<T>();
  const T* tgt = in.target.data_ptr<T>();
  auto stream = c10::cuda::getCurrentCUDAStream();
  start_kernel<T, VEC, LANES><<<blocks_for(n_pix * LANES), kThreads, 0, stream>>>(
      src, tgt, g, nnf[0].data_ptr<int32_t>(), best[0].data_ptr<float>(), n_pix);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t n_jumps = int64_t(jumps.size());
  const int64_t n_passes = std::max<int64_t>(n_jumps, radii.empty() ? 0 : 1);
  for (int64_t t = 0; t < iterations; ++t) {
    for (int64_t p = 0; p < n_passes; ++p) {
      PassArgs args{};
      args.jump = p < n_jumps ? int(jumps[p]) : 0;
      args.pass = int(t * n_passes + p);
      args.period = int(n_passes);
      args.n_radii = (p == n_passes - 1) ? int(radii.size()) : 0;
      for (int i = 0; i < args.n_radii; ++i) args.radii[i] = radii[i];
      args.seed = uint32_t(seed);
      args.level = uint32_t(level);
      args.t = uint32_t(t);
      args.first_random_step = uint32_t(n_jumps);
      const int nxt = 1 - cur;
      pass_kernel<T, VEC, LANES><<<blocks_for(n_pix * LANES), kThreads, 0, stream>>>(
          src, tgt, g, args, nnf[cur].data_ptr<int32_t>(), best[cur].data_ptr<float>(),
          stamp[cur].data_ptr<int32_t>(), nnf[nxt].data_ptr<int32_t>(),
          best[nxt].data_ptr<float>(), stamp[nxt].data_ptr<int32_t>(), n_pix);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      cur = nxt;
    }
  }
}

template <typename T, bool VEC, int LANES>
void run_window(const PreparedInputs& in, int search_radius, at::Tensor& nnf, at::Tensor& best) {
  const int64_t n_pix = int64_t(in.geo.batch) * in.geo.ha * in.geo.wa;
  window_kernel<T, VEC, LANES>
      <<<blocks_for(n_pix * LANES), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      in.source.data_ptr<T>(), in.target.data_ptr<T>(), in.geo, search_radius,
      in.start.data_ptr<int32_t>(), nnf.data_ptr<int32_t>(), best.data_ptr<float>(), n_pix);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Threads per pixel: 32 (a warp splits the channels: coalesced loads, 32x the parallelism of
// small levels) when C >= kWarpMinChannels, else 1. $DEEPEXEMPLAR_CUDA_LANES=1|32 forces one
// (for benchmarks and parity checks of both variants).
constexpr int kWarpMinChannels = 32;

int lanes_for(int channels) {
  const char* forced = std::getenv("DEEPEXEMPLAR_CUDA_LANES");
  if (forced != nullptr && std::string(forced) == "1") return 1;
  if (forced != nullptr && std::string(forced) == "32") return 32;
  return channels >= kWarpMinChannels ? 32 : 1;
}

// Calls f.template operator()<T, VEC, LANES>() for the inputs' dtype, alignment and channels.
template <typename F>
void dispatch_variant(const PreparedInputs& in, F&& f) {
  const bool warp = lanes_for(in.geo.channels) == 32;
  auto with_type = [&]<typename T>() {
    const bool vec = can_vectorize<T>(in.source, in.target, in.geo.channels);
    if (vec && warp)
      f.template operator()<T, true, 32>();
    else if (vec)
      f.template operator()<T, true, 1>();
    else if (warp)
      f.template operator()<T, false, 32>();
    else
      f.template operator()<T, false, 1>();
  };
  if (in.source.scalar_type() == at::kHalf)
    with_type.template operator()<at::Half>();
  else
    with_type.template operator()<float>();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> patchmatch_cuda(const at::Tensor& source,
                                                   const at::Tensor& target,
                                                   const std::optional<at::Tensor>& init,
                                                   int64_t patch_size, int64_t iterations,
                                                   int64_t radius, at::IntArrayRef jumps,
                                                   int64_t seed, int64_t level) {
  TORCH_CHECK(source.is_cuda(), "patchmatch: source must be a CUDA tensor, got ",
              source.device());
  const c10::cuda::CUDAGuard guard(source.device());
  PreparedInputs in = prepare_inputs("patchmatch", source, target, init, patch_size);
  check_cuda_inputs("patchmatch", in);
  TORCH_CHECK(iterations >= 0, "patchmatch: iterations must be >= 0, got ", iterations);
  for (int64_t j : jumps) TORCH_CHECK(j >= 1, "patchmatch: jumps must be >= 1, got ", j);
  if (in.geo.batch == 0) return empty_result(in);
  const std::vector<int32_t> radii = search_radii(radius, in.geo.hb, in.geo.wb);
  TORCH_CHECK(radii.size() <= size_t(kMaxRadii), "patchmatch: radius too large");
  const auto fopts = in.source.options().dtype(at::kFloat);
  at::Tensor nnf[2] = {in.start, at::empty_like(in.start)};
  at::Tensor best[2] = {at::empty({in.geo.batch, in.geo.ha, in.geo.wa}, fopts),
                        at::empty({in.geo.batch, in.geo.ha, in.geo.wa}, fopts)};
  at::Tensor stamp[2] = {at::full({in.geo.batch, in.geo.ha, in.geo.wa}, -1, in.start.options()),
                         at::empty({in.geo.batch, in.geo.ha, in.geo.wa}, in.start.options())};
  int cur = 0;
  dispatch_variant(in, [&]<typename T, bool VEC, int LANES>() {
    run_patchmatch<T, VEC, LANES>(in, nnf, best, stamp, cur, iterations, jumps, radii, seed,
                                  level);
  });
  return {nnf[cur].to(at::kLong), best[cur]};
}

std::tuple<at::Tensor, at::Tensor> window_search_cuda(const at::Tensor& source,
                                                      const at::Tensor& target,
                                                      const std::optional<at::Tensor>& init,
                                                      int64_t patch_size, int64_t radius) {
  TORCH_CHECK(source.is_cuda(), "window_search: source must be a CUDA tensor, got ",
              source.device());
  const c10::cuda::CUDAGuard guard(source.device());
  PreparedInputs in = prepare_inputs("window_search", source, target, init, patch_size);
  check_cuda_inputs("window_search", in);
  TORCH_CHECK(radius >= 0, "window_search: radius must be >= 0, got ", radius);
  if (in.geo.batch == 0) return empty_result(in);
  at::Tensor nnf = at::empty_like(in.start);
  at::Tensor best = at::empty({in.geo.batch, in.geo.ha, in.geo.wa},
                              in.source.options().dtype(at::kFloat));
  const int r = int(std::min<int64_t>(radius, 1 << 20));
  dispatch_variant(in, [&]<typename T, bool VEC, int LANES>() {
    run_window<T, VEC, LANES>(in, r, nnf, best);
  });
  return {nnf.to(at::kLong), best};
}

}  // namespace deepexemplar
