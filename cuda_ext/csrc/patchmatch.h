// PatchMatch and windowed search on L2-normalised feature maps (docs/ARCHITECTURE.md,
// "Dense matching: the reference algorithm"). Shared by the CPU and CUDA kernels.
//
// Ops (schemas in ext.cpp):
//   patchmatch(source (B|1, C, Ha, Wa), target (B|1, C, Hb, Wb),
//              init (B, Ha, Wa, 2) int64 or None, patch_size, iterations, radius, jumps, seed,
//              level)
//       -> nnf (B, Ha, Wa, 2) int64 absolute (y, x) in target, score (B, Ha, Wa) float32
//   window_search(source, target, init, patch_size, radius) -> (nnf, score)
// A batch of 1 on either side is shared by every item of the other. Features are float32 (CPU)
// or float32/float16 (CUDA); scores are accumulated in float32.
#pragma once

#include <ATen/core/Tensor.h>
#include <optional>

#include <cstdint>
#include <tuple>
#include <vector>

#if defined(__CUDACC__)
#define DE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DE_HOST_DEVICE inline
#endif

namespace deepexemplar {

// Sizes of one matching problem; features are stored channels-last: (B, H, W, C).
struct MatchGeometry {
  int32_t batch;    // broadcast batch size
  int32_t source_batched, target_batched;  // 1 if that batch has size B, 0 if it is shared (1)
  int32_t channels;
  int32_t ha, wa;   // source (the image whose pixels get a match)
  int32_t hb, wb;   // target (the image searched)
  int32_t radius;   // patch half-size r = patch_size / 2
};

DE_HOST_DEVICE int32_t clamp_index(int32_t v, int32_t size) {
  return v < 0 ? 0 : (v >= size ? size - 1 : v);
}

// One round of the counter hash: all arithmetic on unsigned 32-bit values.
DE_HOST_DEVICE uint32_t hash_mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x1b873593u;
  x ^= x >> 16;
  return x;
}

// h(seed, level, t, s, pix, c) of the spec: a stateless random number per (step, pixel, axis).
DE_HOST_DEVICE uint32_t counter_hash(uint32_t seed, uint32_t level, uint32_t t, uint32_t s,
                                     uint32_t pix, uint32_t c) {
  return hash_mix(hash_mix(hash_mix(hash_mix(hash_mix(hash_mix(seed) ^ level) ^ t) ^ s) ^ pix) ^
                  c);
}

// Random-search radii R0, R0 / 2, ..., 1 with R0 = min(radius, max(Hb, Wb)); empty when R0 < 1.
std::vector<int32_t> search_radii(int64_t radius, int64_t hb, int64_t wb);

// Entry points registered in ext.cpp (validation happens inside).
std::tuple<at::Tensor, at::Tensor> patchmatch_cpu(const at::Tensor& source,
                                                  const at::Tensor& target,
                                                  const std::optional<at::Tensor>& init,
                                                  int64_t patch_size, int64_t iterations,
                                                  int64_t radius, at::IntArrayRef jumps,
                                                  int64_t seed, int64_t level);
std::tuple<at::Tensor, at::Tensor> window_search_cpu(const at::Tensor& source,
                                                     const at::Tensor& target,
                                                     const std::optional<at::Tensor>& init,
                                                     int64_t patch_size, int64_t radius);
std::tuple<at::Tensor, at::Tensor> patchmatch_cuda(const at::Tensor& source,
                                                   const at::Tensor& target,
                                                   const std::optional<at::Tensor>& init,
                                                   int64_t patch_size, int64_t iterations,
                                                   int64_t radius, at::IntArrayRef jumps,
                                                   int64_t seed, int64_t level);
std::tuple<at::Tensor, at::Tensor> window_search_cuda(const at::Tensor& source,
                                                      const at::Tensor& target,
                                                      const std::optional<at::Tensor>& init,
                                                      int64_t patch_size, int64_t radius);

// The counter hash applied to every element of an int64 tensor of flat pixel indices (CPU);
// exposed for tests and for checking the random draws against the PyTorch reference.
at::Tensor counter_hash_cpu(const at::Tensor& pix, int64_t seed, int64_t level, int64_t t,
                            int64_t s, int64_t c);

// Shared argument checks and preparation (ext.cpp): validates shapes/dtypes by argument name,
// returns the geometry, channels-last contiguous features and the clamped-or-identity start
// field as an int32 (B, Ha, Wa, 2) tensor on the features' device.
struct PreparedInputs {
  MatchGeometry geo;
  at::Tensor source;  // (B|1, Ha, Wa, C) contiguous
  at::Tensor target;  // (B|1, Hb, Wb, C) contiguous
  at::Tensor start;   // (B, Ha, Wa, 2) int32 contiguous, raw init or scaled identity
};
PreparedInputs prepare_inputs(const char* op, const at::Tensor& source, const at::Tensor& target,
                              const std::optional<at::Tensor>& init, int64_t patch_size);

// Empty results for a batch of size 0.
std::tuple<at::Tensor, at::Tensor> empty_result(const PreparedInputs& in);

}  // namespace deepexemplar
