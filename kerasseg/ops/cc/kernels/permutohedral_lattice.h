// Permutohedral lattice for high-dimensional Gaussian filtering
// (Adams, Baek and Davis, "Fast High-Dimensional Filtering Using the
// Permutohedral Lattice", Eurographics 2010).
//
// This file knows nothing about TensorFlow: it builds the lattice of one image
// and filters flat float arrays, so it can be unit-tested and reused. The
// TensorFlow kernels (permutohedral_kernels.cc) move tensors in and out and
// supply the thread pool.
#ifndef KERASSEG_OPS_CC_KERNELS_PERMUTOHEDRAL_LATTICE_H_
#define KERASSEG_OPS_CC_KERNELS_PERMUTOHEDRAL_LATTICE_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace kerasseg {

// Features are rejected above this magnitude: beyond it the lattice
// coordinates no longer fit comfortably in int32 (a theta near zero makes
// features huge; the caller should raise theta instead).
constexpr float kMaxFeatureMagnitude = 1e6f;
constexpr int kMaxFeatureDims = 16;

// Runs fn(begin, end) over [0, total) possibly in parallel; cost_per_unit is a
// rough cycle count per item, as for tensorflow::thread::ThreadPool.
using ParallelFor =
    std::function<void(int64_t total, int64_t cost_per_unit,
                       const std::function<void(int64_t, int64_t)>& fn)>;

// The lattice of one image of `num_points` points with `dims` features each.
// Vertex v's d+1 blur neighbours along direction j are
// neighbors[(j * num_vertices + v) * 2 + {0, 1}] (-1 where absent); point p
// splats onto vertices offsets[p * (dims + 1) + k] with weights[...].
struct Lattice {
  int dims = 0;
  int64_t num_points = 0;
  int64_t num_vertices = 0;
  std::vector<int32_t> offsets;
  std::vector<float> weights;
  std::vector<int32_t> neighbors;
};

// Builds the lattice for `features` (num_points x dims, row major, already
// divided by the kernel bandwidths so the kernel is exp(-|f_i - f_j|^2 / 2)).
// Features must be finite and bounded by kMaxFeatureMagnitude, and
// 1 <= dims <= kMaxFeatureDims. Vertices are numbered in order of first use
// by the points.
Lattice BuildLattice(const float* features, int64_t num_points, int dims,
                     const ParallelFor& parallel_for);

// Filters `values` (num_points x channels, row major) with a lattice given by
// its flat arrays: splat, blur along each of the d+1 lattice directions
// (in reverse order when `reverse`, which gives the transpose: the gradient),
// slice. Direction j's neighbour pairs start at neighbors[2 * j *
// neighbor_stride] (neighbor_stride >= num_vertices allows padding). `out` has
// the same layout as `values`. `num_threads` is the parallelism that
// `parallel_for` offers.
void FilterWithLattice(const int32_t* offsets, const float* weights,
                       const int32_t* neighbors, int64_t neighbor_stride,
                       int64_t num_vertices, int dims, int64_t num_points, int64_t channels,
                       const float* values, bool reverse, float* out,
                       int num_threads, const ParallelFor& parallel_for);

}  // namespace kerasseg

#endif  // KERASSEG_OPS_CC_KERNELS_PERMUTOHEDRAL_LATTICE_H_
