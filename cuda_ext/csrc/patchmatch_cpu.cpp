// CPU kernels of patchmatch and window_search (spec: docs/ARCHITECTURE.md).
//
// Layout: features channels-last (B, H, W, C) float32; state nnf (B, Ha, Wa, 2) int32 and
// best (B, Ha, Wa) float32, double-buffered so that every propagation step is synchronous
// (each pixel reads the previous state only). Pixels are split over threads with
// at::parallel_for; results do not depend on the number of threads.
#include "patchmatch.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace deepexemplar {
namespace {

// Inner product of two C-vectors with 8 independent float accumulators, so that the compiler
// vectorises the loop without reassociation flags.
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline float dot(const float* __restrict a, const float* __restrict b, int32_t c) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int32_t i = 0;
  for (; i + 8 <= c; i += 8) {
    for (int32_t l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float tail = 0.f;
  for (; i < c; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Feature maps of one batch element and the geometry; score() is the patch score of the spec.
struct Scorer {
  const float* a;  // (Ha, Wa, C) of this batch element
  const float* b;  // (Hb, Wb, C)
  MatchGeometry geo;
  float area;  // k^2

#if defined(__GNUC__)
  __attribute__((always_inline))
#endif
  inline float score(int32_t py, int32_t px, int32_t qy, int32_t qx) const {
    const int32_t r = geo.radius, c = geo.channels;
    float sum = 0.f;
    for (int32_t dy = -r; dy <= r; ++dy) {
      const float* arow = a + int64_t(clamp_index(py + dy, geo.ha)) * geo.wa * c;
      const float* brow = b + int64_t(clamp_index(qy + dy, geo.hb)) * geo.wb * c;
      for (int32_t dx = -r; dx <= r; ++dx) {
        sum += dot(arow + int64_t(clamp_index(px + dx, geo.wa)) * c,
                   brow + int64_t(clamp_index(qx + dx, geo.wb)) * c, c);
      }
    }
    return sum / area;
  }
};

// What one pass does besides keeping the current match.
struct PassConfig {
  int32_t jump;           // propagation distance, 0 = no propagation
  bool random;            // run the random-search radii after the propagation
  int32_t pass;           // index of this pass since the start (0, 1, ...)
  int32_t period;         // passes per iteration: pass - period used the same jump
  uint32_t seed, level, t;
  uint32_t first_random_step;  // step index s of the first radius
  const int32_t* radii;
  int32_t n_radii;
};

// One synchronous pass over the pixels [begin, end) (flat index b * Ha * Wa + y * Wa + x).
// Candidates that cannot be strictly better are skipped, which leaves the result unchanged:
// one equal to the current match or to an earlier candidate of the same pass, and a
// propagation candidate already tried one iteration ago (same jump, and the neighbour's match
// has not changed since: stamp = the last pass that changed a pixel's match), because the
// best score of a pixel never decreases.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void pass_range(const float* src, const float* tgt, MatchGeometry geo, PassConfig cfg,
                const int32_t* nnf_in, const float* best_in, const int32_t* stamp_in,
                int32_t* nnf_out, float* best_out, int32_t* stamp_out, int64_t begin,
                int64_t end) {
  const int32_t tried_before = cfg.pass - cfg.period;  // < 0 in the first iteration
  const int64_t plane = int64_t(geo.ha) * geo.wa;
  const int64_t a_size = plane * geo.channels;
  const int64_t b_size = int64_t(geo.hb) * geo.wb * geo.channels;
  const int32_t dys[4] = {0, 0, -1, 1};
  const int32_t dxs[4] = {-1, 1, 0, 0};
  for (int64_t idx = begin; idx < end; ++idx) {
    const int32_t bi = int32_t(idx / plane);
    const int32_t py = int32_t((idx % plane) / geo.wa);
    const int32_t px = int32_t(idx % geo.wa);
    const Scorer scorer{src + geo.source_batched * bi * a_size,
                        tgt + geo.target_batched * bi * b_size, geo,
                        float((2 * geo.radius + 1) * (2 * geo.radius + 1))};
    int32_t cy = nnf_in[2 * idx], cx = nnf_in[2 * idx + 1];
    float best = best_in[idx];
    int32_t seen_y[4], seen_x[4], n_seen = 0;
    for (int32_t k = 0; cfg.jump > 0 && k < 4; ++k) {
      const int32_t ny = py + dys[k] * cfg.jump, nx = px + dxs[k] * cfg.jump;
      if (ny < 0 || ny >= geo.ha || nx < 0 || nx >= geo.wa) continue;
      const int64_t n = int64_t(bi) * plane + int64_t(ny) * geo.wa + nx;
      if (stamp_in[n] < tried_before) continue;
      const int32_t qy = clamp_index(nnf_in[2 * n] + (py - ny), geo.hb);
      const int32_t qx = clamp_index(nnf_in[2 * n + 1] + (px - nx), geo.wb);
      bool duplicate = (qy == nnf_in[2 * idx] && qx == nnf_in[2 * idx + 1]);
      for (int32_t m = 0; m < n_seen && !duplicate; ++m)
        duplicate = (seen_y[m] == qy && seen_x[m] == qx);
      if (duplicate) continue;
      seen_y[n_seen] = qy;
      seen_x[n_seen++] = qx;
      const float s = scorer.score(py, px, qy, qx);
      if (s > best) {
        best = s;
        cy = qy;
        cx = qx;
      }
    }
    for (int32_t i = 0; cfg.random && i < cfg.n_radii; ++i) {
      const uint32_t span = uint32_t(2 * cfg.radii[i] + 1);
      const uint32_t step = cfg.first_random_step + uint32_t(i);
      const uint32_t hy = counter_hash(cfg.seed, cfg.level, cfg.t, step, uint32_t(idx), 0);
      const uint32_t hx = counter_hash(cfg.seed, cfg.level, cfg.t, step, uint32_t(idx), 1);
      const int32_t oy = int32_t(hy % span) - cfg.radii[i];
      const int32_t ox = int32_t(hx % span) - cfg.radii[i];
      const int32_t qy = clamp_index(cy + oy, geo.hb), qx = clamp_index(cx + ox, geo.wb);
      if (qy == cy && qx == cx) continue;
      const float s = scorer.score(py, px, qy, qx);
      if (s > best) {
        best = s;
        cy = qy;
        cx = qx;
      }
    }
    const bool changed = cy != nnf_in[2 * idx] || cx != nnf_in[2 * idx + 1];
    nnf_out[2 * idx] = cy;
    nnf_out[2 * idx + 1] = cx;
    best_out[idx] = best;
    stamp_out[idx] = changed ? cfg.pass : stamp_in[idx];
  }
}

// Clamps the start field into the target and scores it (in place).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void start_range(const float* src, const float* tgt, MatchGeometry geo, int32_t* nnf,
                 float* best, int64_t begin, int64_t end) {
  const int64_t plane = int64_t(geo.ha) * geo.wa;
  for (int64_t idx = begin; idx < end; ++idx) {
    const int32_t bi = int32_t(idx / plane);
    const Scorer scorer{src + int64_t(geo.source_batched * bi) * plane * geo.channels,
                        tgt + int64_t(geo.target_batched * bi) * geo.hb * geo.wb * geo.channels,
                        geo,
                        float((2 * geo.radius + 1) * (2 * geo.radius + 1))};
    nnf[2 * idx] = clamp_index(nnf[2 * idx], geo.hb);
    nnf[2 * idx + 1] = clamp_index(nnf[2 * idx + 1], geo.wb);
    best[idx] = scorer.score(int32_t((idx % plane) / geo.wa), int32_t(idx % geo.wa),
                             nnf[2 * idx], nnf[2 * idx + 1]);
  }
}

// Exhaustive window search for the source rows [row0, row1) of batch element bi: the argmax
// over q in clampB(clampB(start(p)) + [-R, R]^2), row-major order, first maximum wins.
//
// Cosine tables: a patch score is a sum of k^2 pixel cosines <A[x], B[y]>, and neighbouring
// source pixels with similar start offsets need the same cosines. For every source pixel x of
// the band (plus r halo rows) we compute T_x[v] = <A[x], B[clampB(x + v)]> for the offsets
// v in f(x) + [-H, H]^2, f(x) = clampB(start(x)) - x, H = R + r; a pixel whose patch
// neighbours' offsets are within r of its own then reads its k^2 (2R+1)^2 terms from the
// tables, the others are scored directly. Both paths add the same dot() values in the same
// order, so the result does not depend on which one ran. ``table`` is scratch memory.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void window_band(const float* src, const float* tgt, MatchGeometry geo, int32_t search_radius,
                 bool use_table, const int32_t* start, int32_t* nnf, float* best, int32_t bi,
                 int32_t row0, int32_t row1, std::vector<float>& table) {
  const int64_t plane = int64_t(geo.ha) * geo.wa;
  const int32_t r = geo.radius, c = geo.channels, half = search_radius + r, side = 2 * half + 1;
  const float* a = src + int64_t(geo.source_batched * bi) * plane * c;
  const float* b = tgt + int64_t(geo.target_batched * bi) * geo.hb * geo.wb * c;
  const int32_t* st = start + int64_t(bi) * plane * 2;
  const Scorer scorer{a, b, geo, float((2 * r + 1) * (2 * r + 1))};
  const int32_t t0 = std::max(0, row0 - r), t1 = std::min(geo.ha, row1 + r);
  auto offset_y = [&](int32_t y, int32_t x) {
    return clamp_index(st[2 * (int64_t(y) * geo.wa + x)], geo.hb) - y;
  };
  auto offset_x = [&](int32_t y, int32_t x) {
    return clamp_index(st[2 * (int64_t(y) * geo.wa + x) + 1], geo.wb) - x;
  };
  if (use_table) {
    table.resize(size_t(t1 - t0) * geo.wa * side * side);
    for (int32_t y = t0; y < t1; ++y) {
      for (int32_t x = 0; x < geo.wa; ++x) {
        float* tx = table.data() + (int64_t(y - t0) * geo.wa + x) * side * side;
        const float* ax = a + (int64_t(y) * geo.wa + x) * c;
        const int32_t by0 = y + offset_y(y, x) - half, bx0 = x + offset_x(y, x) - half;
        for (int32_t i = 0; i < side; ++i) {
          const float* brow = b + int64_t(clamp_index(by0 + i, geo.hb)) * geo.wb * c;
          for (int32_t j = 0; j < side; ++j)
            tx[i * side + j] = dot(ax, brow + int64_t(clamp_index(bx0 + j, geo.wb)) * c, c);
        }
      }
    }
  }
  std::vector<int64_t> base(size_t((2 * r + 1) * (2 * r + 1)));
  std::vector<float> sums;
  for (int32_t py = row0; py < row1; ++py) {
    for (int32_t px = 0; px < geo.wa; ++px) {
      const int32_t sy = clamp_index(st[2 * (int64_t(py) * geo.wa + px)], geo.hb);
      const int32_t sx = clamp_index(st[2 * (int64_t(py) * geo.wa + px) + 1], geo.wb);
      const int32_t y0 = clamp_index(sy - search_radius, geo.hb);
      const int32_t y1 = clamp_index(sy + search_radius, geo.hb);
      const int32_t x0 = clamp_index(sx - search_radius, geo.wb);
      const int32_t x1 = clamp_index(sx + search_radius, geo.wb);
      // Table index of term d for candidate q is base[d] + qy * side + qx, if in range.
      bool tabled = use_table;
      for (int32_t dy = -r, n = 0; tabled && dy <= r; ++dy) {
        for (int32_t dx = -r; tabled && dx <= r; ++dx, ++n) {
          const int32_t xy = clamp_index(py + dy, geo.ha), xx = clamp_index(px + dx, geo.wa);
          const int32_t lo_y = offset_y(xy, xx) - half + xy - dy;  // smallest qy in the table
          const int32_t lo_x = offset_x(xy, xx) - half + xx - dx;
          tabled = y0 >= lo_y && y1 < lo_y + side && x0 >= lo_x && x1 < lo_x + side;
          base[n] = (int64_t(xy - t0) * geo.wa + xx) * side * side - int64_t(lo_y) * side - lo_x;
        }
      }
      // Patch sums of all candidates, term by term (d outer: one source vector against a
      // block of target vectors), in the same order as Scorer::score.
      const int32_t ny = y1 - y0 + 1, nx = x1 - x0 + 1;
      sums.assign(size_t(ny) * nx, 0.f);
      for (int32_t dy = -r, n = 0; dy <= r; ++dy) {
        for (int32_t dx = -r; dx <= r; ++dx, ++n) {
          float* out = sums.data();
          if (tabled) {
            for (int32_t qy = y0; qy <= y1; ++qy) {
              const float* row = table.data() + base[n] + int64_t(qy) * side;
              for (int32_t qx = x0; qx <= x1; ++qx) *out++ += row[qx];
            }
            continue;
          }
          const float* av = a + (int64_t(clamp_index(py + dy, geo.ha)) * geo.wa +
                                 clamp_index(px + dx, geo.wa)) * c;
          for (int32_t qy = y0; qy <= y1; ++qy) {
            const float* brow = b + int64_t(clamp_index(qy + dy, geo.hb)) * geo.wb * c;
            for (int32_t qx = x0; qx <= x1; ++qx)
              *out++ += dot(av, brow + int64_t(clamp_index(qx + dx, geo.wb)) * c, c);
          }
        }
      }
      float top = -std::numeric_limits<float>::infinity();
      int32_t ty = y0, tx = x0;
      for (int32_t i = 0; i < ny * nx; ++i) {
        const float s = sums[i] / scorer.area;
        if (s > top) {
          top = s;
          ty = y0 + i / nx;
          tx = x0 + i % nx;
        }
      }
      const int64_t idx = int64_t(bi) * plane + int64_t(py) * geo.wa + px;
      nnf[2 * idx] = ty;
      nnf[2 * idx + 1] = tx;
      best[idx] = top;
    }
  }
}

// Source rows per window-search task (cosine tables are computed for these plus 2r halo rows).
constexpr int32_t kBandRows = 16;

// Pixels per parallel_for task: a few thousand patch scores amortise the task overhead.
constexpr int64_t kGrain = 256;

}  // namespace

std::tuple<at::Tensor, at::Tensor> patchmatch_cpu(const at::Tensor& source,
                                                  const at::Tensor& target,
                                                  const std::optional<at::Tensor>& init,
                                                  int64_t patch_size, int64_t iterations,
                                                  int64_t radius, at::IntArrayRef jumps,
                                                  int64_t seed, int64_t level) {
  PreparedInputs in = prepare_inputs("patchmatch", source, target, init, patch_size);
  TORCH_CHECK(in.source.scalar_type() == at::kFloat,
              "patchmatch: source/target must be float32 on the CPU, got ",
              in.source.scalar_type());
  TORCH_CHECK(iterations >= 0, "patchmatch: iterations must be >= 0, got ", iterations);
  for (int64_t j : jumps) TORCH_CHECK(j >= 1, "patchmatch: jumps must be >= 1, got ", j);
  if (in.geo.batch == 0) return empty_result(in);
  const MatchGeometry geo = in.geo;
  const float* src = in.source.data_ptr<float>();
  const float* tgt = in.target.data_ptr<float>();
  const int64_t n_pix = int64_t(geo.batch) * geo.ha * geo.wa;
  at::Tensor nnf[2] = {in.start, at::empty_like(in.start)};
  at::Tensor best[2] = {at::empty({geo.batch, geo.ha, geo.wa}, in.source.options()),
                        at::empty({geo.batch, geo.ha, geo.wa}, in.source.options())};
  at::parallel_for(0, n_pix, kGrain, [&](int64_t begin, int64_t end) {
    start_range(src, tgt, geo, nnf[0].data_ptr<int32_t>(), best[0].data_ptr<float>(), begin, end);
  });
  const std::vector<int32_t> radii = search_radii(radius, geo.hb, geo.wb);
  const int64_t n_jumps = int64_t(jumps.size());
  const int64_t n_passes = std::max<int64_t>(n_jumps, radii.empty() ? 0 : 1);
  at::Tensor stamp[2] = {at::full({geo.batch, geo.ha, geo.wa}, -1, in.start.options()),
                         at::empty({geo.batch, geo.ha, geo.wa}, in.start.options())};
  int cur = 0;
  for (int64_t t = 0; t < iterations; ++t) {
    for (int64_t p = 0; p < n_passes; ++p) {
      const bool last = (p == n_passes - 1);
      const PassConfig cfg{p < n_jumps ? int32_t(jumps[p]) : 0,
                           last && !radii.empty(),
                           int32_t(t * n_passes + p),
                           int32_t(n_passes),
                           uint32_t(seed),
                           uint32_t(level),
                           uint32_t(t),
                           uint32_t(n_jumps),
                           radii.data(),
                           int32_t(radii.size())};
      const int nxt = 1 - cur;
      at::parallel_for(0, n_pix, kGrain, [&](int64_t begin, int64_t end) {
        pass_range(src, tgt, geo, cfg, nnf[cur].data_ptr<int32_t>(), best[cur].data_ptr<float>(),
                   stamp[cur].data_ptr<int32_t>(), nnf[nxt].data_ptr<int32_t>(),
                   best[nxt].data_ptr<float>(), stamp[nxt].data_ptr<int32_t>(), begin, end);
      });
      cur = nxt;
    }
  }
  return {nnf[cur].to(at::kLong), best[cur]};
}

std::tuple<at::Tensor, at::Tensor> window_search_cpu(const at::Tensor& source,
                                                     const at::Tensor& target,
                                                     const std::optional<at::Tensor>& init,
                                                     int64_t patch_size, int64_t radius) {
  PreparedInputs in = prepare_inputs("window_search", source, target, init, patch_size);
  TORCH_CHECK(in.source.scalar_type() == at::kFloat,
              "window_search: source/target must be float32 on the CPU, got ",
              in.source.scalar_type());
  TORCH_CHECK(radius >= 0, "window_search: radius must be >= 0, got ", radius);
  if (in.geo.batch == 0) return empty_result(in);
  const MatchGeometry geo = in.geo;
  at::Tensor nnf = at::empty_like(in.start);
  at::Tensor best = at::empty({geo.batch, geo.ha, geo.wa}, in.source.options());
  const int32_t r = int32_t(std::min<int64_t>(radius, 1 << 20));
  // Tables pay when their (2(R + r) + 1)^2 cosines per pixel (plus halo rows) are fewer than
  // the k^2 (2R + 1)^2 of the direct scores, and stay small.
  const int64_t k2 = int64_t(2 * geo.radius + 1) * (2 * geo.radius + 1);
  const int64_t side = 2 * (int64_t(r) + geo.radius) + 1, window = 2 * int64_t(r) + 1;
  const bool use_table =
      k2 > 1 && side <= 41 &&
      side * side * (kBandRows + 2 * geo.radius) < window * window * k2 * kBandRows;
  const int32_t bands_per_image = (geo.ha + kBandRows - 1) / kBandRows;
  at::parallel_for(0, int64_t(geo.batch) * bands_per_image, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> table;
    for (int64_t band = begin; band < end; ++band) {
      const int32_t bi = int32_t(band / bands_per_image);
      const int32_t row0 = int32_t(band % bands_per_image) * kBandRows;
      window_band(in.source.data_ptr<float>(), in.target.data_ptr<float>(), geo, r, use_table,
                  in.start.data_ptr<int32_t>(), nnf.data_ptr<int32_t>(), best.data_ptr<float>(),
                  bi, row0, std::min(geo.ha, row0 + kBandRows), table);
    }
  });
  return {nnf.to(at::kLong), best};
}

at::Tensor counter_hash_cpu(const at::Tensor& pix, int64_t seed, int64_t level, int64_t t,
                            int64_t s, int64_t c) {
  TORCH_CHECK(pix.device().is_cpu() && pix.scalar_type() == at::kLong,
              "counter_hash: pix must be a CPU int64 tensor, got ", pix.device(), " ",
              pix.scalar_type());
  at::Tensor in = pix.contiguous();
  at::Tensor out = at::empty_like(in);
  const int64_t* p = in.data_ptr<int64_t>();
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < in.numel(); ++i) {
    o[i] = int64_t(counter_hash(uint32_t(seed), uint32_t(level), uint32_t(t), uint32_t(s),
                                uint32_t(p[i]), uint32_t(c)));
  }
  return out;
}

std::vector<int32_t> search_radii(int64_t radius, int64_t hb, int64_t wb) {
  std::vector<int32_t> radii;
  for (int64_t r = std::min(radius, std::max(hb, wb)); r >= 1; r /= 2) radii.push_back(int32_t(r));
  return radii;
}

PreparedInputs prepare_inputs(const char* op, const at::Tensor& source, const at::Tensor& target,
                              const std::optional<at::Tensor>& init, int64_t patch_size) {
  TORCH_CHECK(source.dim() == 4, op, ": source must be (B, C, Ha, Wa), got ", source.sizes());
  TORCH_CHECK(target.dim() == 4, op, ": target must be (B, C, Hb, Wb), got ", target.sizes());
  TORCH_CHECK(source.device() == target.device(), op,
              ": source and target must be on the same device, got ", source.device(), " and ",
              target.device());
  TORCH_CHECK(source.scalar_type() == target.scalar_type(), op,
              ": source and target must have the same dtype, got ", source.scalar_type(),
              " and ", target.scalar_type());
  TORCH_CHECK(source.size(1) == target.size(1), op,
              ": source and target must have the same channels, got ", source.sizes(), " and ",
              target.sizes());
  TORCH_CHECK(source.size(0) == target.size(0) || source.size(0) == 1 || target.size(0) == 1, op,
              ": source and target batches must be equal or one of them 1, got ",
              source.sizes(), " and ", target.sizes());
  const int64_t batch = (source.size(0) == 1 || target.size(0) == 1)
                            ? source.size(0) * target.size(0)
                            : source.size(0);
  TORCH_CHECK(source.size(1) >= 1 && source.size(2) >= 1 && source.size(3) >= 1 &&
                  target.size(2) >= 1 && target.size(3) >= 1,
              op, ": channels and spatial sizes must be >= 1, got ", source.sizes(), " and ",
              target.sizes());
  TORCH_CHECK(patch_size >= 1 && patch_size % 2 == 1, op,
              ": patch_size must be odd and >= 1, got ", patch_size);
  const int64_t limit = int64_t(1) << 31;
  TORCH_CHECK(source.numel() < limit && target.numel() < limit, op,
              ": feature maps must have fewer than 2^31 elements");
  PreparedInputs in;
  in.geo = MatchGeometry{int32_t(batch), int32_t(source.size(0) == batch),
                         int32_t(target.size(0) == batch), int32_t(source.size(1)),
                         int32_t(source.size(2)), int32_t(source.size(3)),
                         int32_t(target.size(2)), int32_t(target.size(3)),
                         int32_t(patch_size / 2)};
  in.source = source.permute({0, 2, 3, 1}).contiguous();
  in.target = target.permute({0, 2, 3, 1}).contiguous();
  if (init.has_value() && init->defined()) {
    const at::Tensor& f = *init;
    TORCH_CHECK(f.device() == source.device(), op, ": init must be on ", source.device(),
                ", got ", f.device());
    TORCH_CHECK(f.scalar_type() == at::kLong || f.scalar_type() == at::kInt, op,
                ": init must be int64 or int32, got ", f.scalar_type());
    TORCH_CHECK(f.dim() == 4 && f.size(0) == batch && f.size(1) == source.size(2) &&
                    f.size(2) == source.size(3) && f.size(3) == 2,
                op, ": init must be (B, Ha, Wa, 2) = (", batch, ", ", source.size(2),
                ", ", source.size(3), ", 2), got ", f.sizes());
    // Values far outside the target clamp to the same matches; bound them to stay in int32.
    in.start = f.clamp(-(int64_t(1) << 30), int64_t(1) << 30).to(at::kInt).contiguous();
  } else {
    const auto opts = source.options().dtype(at::kLong);
    at::Tensor ys = at::arange(in.geo.ha, opts).mul(in.geo.hb).floor_divide(in.geo.ha);
    at::Tensor xs = at::arange(in.geo.wa, opts).mul(in.geo.wb).floor_divide(in.geo.wa);
    in.start = at::stack({ys.view({-1, 1}).expand({in.geo.ha, in.geo.wa}),
                          xs.view({1, -1}).expand({in.geo.ha, in.geo.wa})},
                         -1)
                   .unsqueeze(0)
                   .expand({in.geo.batch, in.geo.ha, in.geo.wa, 2})
                   .to(at::kInt)
                   .contiguous();
  }
  return in;
}

std::tuple<at::Tensor, at::Tensor> empty_result(const PreparedInputs& in) {
  const auto opts = in.source.options();
  return {at::empty({0, in.geo.ha, in.geo.wa, 2}, opts.dtype(at::kLong)),
          at::empty({0, in.geo.ha, in.geo.wa}, opts.dtype(at::kFloat))};
}

}  // namespace deepexemplar
