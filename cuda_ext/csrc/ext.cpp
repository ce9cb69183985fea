// Operator schemas of the deepexemplar extension and their CPU/CUDA registrations.
// Loaded from Python with torch.ops.load_library; the ops live under torch.ops.deepexemplar.
#include "patchmatch.h"

#include <torch/library.h>

namespace deepexemplar {
namespace {

#if !defined(DEEPEXEMPLAR_WITH_CUDA)
std::tuple<at::Tensor, at::Tensor> patchmatch_no_cuda(const at::Tensor&, const at::Tensor&,
                                                      const std::optional<at::Tensor>&, int64_t,
                                                      int64_t, int64_t, at::IntArrayRef, int64_t,
                                                      int64_t) {
  TORCH_CHECK(false, "deepexemplar::patchmatch: Not compiled with GPU support; rebuild with "
                     "`deepexemplar build-ext --force` on a machine with CUDA and nvcc");
}
std::tuple<at::Tensor, at::Tensor> window_search_no_cuda(const at::Tensor&, const at::Tensor&,
                                                         const std::optional<at::Tensor>&,
                                                         int64_t, int64_t) {
  TORCH_CHECK(false, "deepexemplar::window_search: Not compiled with GPU support; rebuild with "
                     "`deepexemplar build-ext --force` on a machine with CUDA and nvcc");
}
#endif

}  // namespace

TORCH_LIBRARY(deepexemplar, m) {
  m.def(
      "patchmatch(Tensor source, Tensor target, Tensor? init, int patch_size, int iterations, "
      "int radius, int[] jumps, int seed, int level) -> (Tensor, Tensor)");
  m.def(
      "window_search(Tensor source, Tensor target, Tensor? init, int patch_size, int radius) "
      "-> (Tensor, Tensor)");
  m.def("counter_hash(Tensor pix, int seed, int level, int t, int s, int c) -> Tensor");
}

TORCH_LIBRARY_IMPL(deepexemplar, CPU, m) {
  m.impl("patchmatch", &patchmatch_cpu);
  m.impl("window_search", &window_search_cpu);
  m.impl("counter_hash", &counter_hash_cpu);
}

TORCH_LIBRARY_IMPL(deepexemplar, CUDA, m) {
#if defined(DEEPEXEMPLAR_WITH_CUDA)
  m.impl("patchmatch", &patchmatch_cuda);
  m.impl("window_search", &window_search_cuda);
#else
  m.impl("patchmatch", &patchmatch_no_cuda);
  m.impl("window_search", &window_search_no_cuda);
#endif
}

}  // namespace deepexemplar
