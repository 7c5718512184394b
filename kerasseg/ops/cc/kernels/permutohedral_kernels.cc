// CPU kernels of Kerasseg>PermutohedralLattice and Kerasseg>PermutohedralFilter
// (registered in ops/permutohedral_ops.cc). They validate every input, run the
// lattice code of permutohedral_lattice.h on the TensorFlow intra-op thread
// pool and keep no state between calls, so Compute is thread-safe.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kerasseg/ops/cc/kernels/permutohedral_lattice.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace kerasseg {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;

namespace {

ParallelFor ThreadPoolFor(OpKernelContext* context) {
  auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;
  return [workers](int64_t total, int64_t cost_per_unit,
                   const std::function<void(int64_t, int64_t)>& fn) {
    if (total > 0) workers->ParallelFor(total, cost_per_unit, fn);
  };
}

int NumThreads(OpKernelContext* context) {
  return context->device()->tensorflow_cpu_worker_threads()->num_threads;
}

// Whether every value is finite. Written as an integer OR-reduction over the
// exponent bits so that the compiler vectorises it: it runs on every call.
bool AllFinite(const float* data, int64_t size) {
  uint32_t non_finite = 0;
  for (int64_t i = 0; i < size; ++i) {
    uint32_t bits;
    std::memcpy(&bits, data + i, sizeof(bits));
    non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return non_finite == 0;
}

// Index of the first value that is not finite, or -1 (for error messages).
int64_t FirstNonFinite(const float* data, int64_t size) {
  for (int64_t i = 0; i < size; ++i) {
    if (!std::isfinite(data[i])) return i;
  }
  return -1;
}

// Whether every index lies in [low, high), as a vectorisable reduction (the
// bounds are int32 like the data, or the loop would not vectorise).
bool AllInRange(const int32_t* data, int64_t size, int32_t low, int32_t high) {
  uint32_t outside = 0;
  for (int64_t i = 0; i < size; ++i) {
    outside |= static_cast<uint32_t>(data[i] < low) | static_cast<uint32_t>(data[i] >= high);
  }
  return outside == 0;
}

class PermutohedralLatticeOp : public OpKernel {
 public:
  explicit PermutohedralLatticeOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& features = context->input(0);
    OP_REQUIRES(context, features.dims() == 3,
                InvalidArgument("features must be rank 3 [batch, points, dims], got shape ",
                                features.shape().DebugString()));
    const int64_t batch = features.dim_size(0);
    const int64_t points = features.dim_size(1);
    const int64_t dims = features.dim_size(2);
    OP_REQUIRES(context, points > 0,
                InvalidArgument("features must have at least one point (an empty "
                                "image), got shape ", features.shape().DebugString()));
    OP_REQUIRES(context, dims >= 1 && dims <= kMaxFeatureDims,
                InvalidArgument("features must have between 1 and ", kMaxFeatureDims,
                                " dimensions, got shape ", features.shape().DebugString()));
    OP_REQUIRES(context, points * (dims + 1) < std::numeric_limits<int32_t>::max(),
                InvalidArgument("too many points for int32 lattice indices: ", points));

    const auto flat = features.flat<float>();
    for (int64_t i = 0; i < flat.size(); ++i) {
      const float f = flat(i);
      OP_REQUIRES(context, std::isfinite(f),
                  InvalidArgument("features must be finite, got ", f, " at flat index ", i));
      OP_REQUIRES(context, std::abs(f) <= kMaxFeatureMagnitude,
                  InvalidArgument("features must have magnitude at most ", kMaxFeatureMagnitude,
                                  " (is a bandwidth theta near zero?), got ", f,
                                  " at flat index ", i));
    }

    const ParallelFor parallel_for = ThreadPoolFor(context);
    std::vector<Lattice> lattices;
    lattices.reserve(batch);
    int64_t max_vertices = 0;
    for (int64_t b = 0; b < batch; ++b) {
      lattices.push_back(BuildLattice(flat.data() + b * points * dims, points,
                                      static_cast<int>(dims), parallel_for));
      max_vertices = std::max(max_vertices, lattices.back().num_vertices);
    }

    const int64_t d1 = dims + 1;
    Tensor* offsets = nullptr;
    Tensor* weights = nullptr;
    Tensor* neighbors = nullptr;
    Tensor* num_vertices = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({batch, points, d1}), &offsets));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({batch, points, d1}), &weights));
    OP_REQUIRES_OK(context, context->allocate_output(
                                2, TensorShape({batch, d1, max_vertices, 2}), &neighbors));
    OP_REQUIRES_OK(context, context->allocate_output(3, TensorShape({batch}), &num_vertices));
    auto neighbors_flat = neighbors->flat<int32_t>();
    std::fill(neighbors_flat.data(), neighbors_flat.data() + neighbors_flat.size(), -1);
    for (int64_t b = 0; b < batch; ++b) {
      const Lattice& lattice = lattices[b];
      const int64_t m = lattice.num_vertices;
      std::copy(lattice.offsets.begin(), lattice.offsets.end(),
                offsets->flat<int32_t>().data() + b * points * d1);
      std::copy(lattice.weights.begin(), lattice.weights.end(),
                weights->flat<float>().data() + b * points * d1);
      for (int64_t j = 0; j < d1; ++j) {
        std::copy(lattice.neighbors.begin() + j * m * 2, lattice.neighbors.begin() + (j + 1) * m * 2,
                  neighbors_flat.data() + (b * d1 + j) * max_vertices * 2);
      }
      num_vertices->flat<int32_t>()(b) = static_cast<int32_t>(m);
    }
  }
};

class PermutohedralFilterOp : public OpKernel {
 public:
  explicit PermutohedralFilterOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &reverse_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& values = context->input(0);
    const Tensor& offsets = context->input(1);
    const Tensor& weights = context->input(2);
    const Tensor& neighbors = context->input(3);
    const Tensor& num_vertices = context->input(4);
    OP_REQUIRES(context, values.dims() == 3,
                InvalidArgument("values must be rank 3 [batch, points, channels], got shape ",
                                values.shape().DebugString()));
    OP_REQUIRES(context, offsets.dims() == 3 && weights.dims() == 3 && neighbors.dims() == 4 &&
                             num_vertices.dims() == 1,
                InvalidArgument("lattice tensors must have ranks 3, 3, 4 and 1 (as returned by "
                                "PermutohedralLattice), got shapes ",
                                offsets.shape().DebugString(), ", ", weights.shape().DebugString(),
                                ", ", neighbors.shape().DebugString(), ", ",
                                num_vertices.shape().DebugString()));
    const int64_t batch = values.dim_size(0);
    const int64_t points = values.dim_size(1);
    const int64_t channels = values.dim_size(2);
    OP_REQUIRES(context, offsets.shape() == weights.shape(),
                InvalidArgument("offsets and weights must have the same shape, got ",
                                offsets.shape().DebugString(), " and ",
                                weights.shape().DebugString()));
    OP_REQUIRES(context, offsets.dim_size(0) == batch && neighbors.dim_size(0) == batch &&
                             num_vertices.dim_size(0) == batch,
                InvalidArgument("values and lattice must have the same batch size, got values ",
                                values.shape().DebugString(), " and offsets ",
                                offsets.shape().DebugString()));
    OP_REQUIRES(context, offsets.dim_size(1) == points,
                InvalidArgument("values and lattice must have the same number of points, got "
                                "values ", values.shape().DebugString(), " and offsets ",
                                offsets.shape().DebugString()));
    OP_REQUIRES(context, points > 0 && channels > 0,
                InvalidArgument("values must have at least one point and one channel, got ",
                                values.shape().DebugString()));
    const int64_t d1 = offsets.dim_size(2);
    OP_REQUIRES(context, d1 >= 2 && d1 <= kMaxFeatureDims + 1 && neighbors.dim_size(1) == d1 &&
                             neighbors.dim_size(3) == 2,
                InvalidArgument("inconsistent lattice shapes: offsets ",
                                offsets.shape().DebugString(), ", neighbors ",
                                neighbors.shape().DebugString()));
    const int64_t max_vertices = neighbors.dim_size(2);

    const float* values_data = values.flat<float>().data();
    if (!AllFinite(values_data, values.NumElements())) {
      const int64_t bad = FirstNonFinite(values_data, values.NumElements());
      OP_REQUIRES(context, false, InvalidArgument("values must be finite, got ",
                                                  values_data[bad], " at flat index ", bad));
    }
    const float* weights_data = weights.flat<float>().data();
    OP_REQUIRES(context, AllFinite(weights_data, weights.NumElements()),
                InvalidArgument("lattice weights must be finite"));

    // The lattice may come from anywhere: check every index before using it.
    const int32_t* offsets_data = offsets.flat<int32_t>().data();
    const int32_t* neighbors_data = neighbors.flat<int32_t>().data();
    const auto vertex_counts = num_vertices.flat<int32_t>();
    for (int64_t b = 0; b < batch; ++b) {
      const int32_t m = vertex_counts(b);
      OP_REQUIRES(context, m >= 0 && m <= max_vertices,
                  InvalidArgument("num_vertices[", b, "] = ", m, " is outside [0, ",
                                  max_vertices, "]"));
      OP_REQUIRES(context, AllInRange(offsets_data + b * points * d1, points * d1, 0, m),
                  InvalidArgument("lattice offsets of batch element ", b,
                                  " must lie in [0, num_vertices = ", m, ")"));
      for (int64_t j = 0; j < d1; ++j) {
        OP_REQUIRES(context,
                    AllInRange(neighbors_data + (b * d1 + j) * max_vertices * 2, 2 * m, -1, m),
                    InvalidArgument("lattice neighbours of batch element ", b,
                                    " must lie in [-1, num_vertices = ", m, ")"));
      }
    }

    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, values.shape(), &output));
    float* output_data = output->flat<float>().data();
    const ParallelFor parallel_for = ThreadPoolFor(context);
    for (int64_t b = 0; b < batch; ++b) {
      FilterWithLattice(offsets_data + b * points * d1, weights_data + b * points * d1,
                        neighbors_data + b * d1 * max_vertices * 2, max_vertices,
                        vertex_counts(b), static_cast<int>(d1 - 1), points, channels,
                        values_data + b * points * channels, reverse_,
                        output_data + b * points * channels, NumThreads(context),
                        parallel_for);
    }
  }

 private:
  bool reverse_ = false;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("Kerasseg>PermutohedralLattice").Device(DEVICE_CPU),
                        PermutohedralLatticeOp);
REGISTER_KERNEL_BUILDER(Name("Kerasseg>PermutohedralFilter").Device(DEVICE_CPU),
                        PermutohedralFilterOp);

}  // namespace kerasseg
