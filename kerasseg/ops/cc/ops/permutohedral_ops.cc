// Op registration and shape functions for permutohedral-lattice Gaussian
// filtering. Kernels: kernels/permutohedral_kernels.cc.
//
// Filtering is split into two ops so that a lattice is built once per image
// and reused by every mean-field iteration of a dense CRF:
//   lattice = PermutohedralLattice(features)
//   output  = PermutohedralFilter(values, *lattice)
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasseg {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

absl::Status LatticeShape(InferenceContext* c) {
  ShapeHandle features;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &features));
  DimensionHandle batch = c->Dim(features, 0);
  DimensionHandle points = c->Dim(features, 1);
  DimensionHandle simplex;  // d + 1 vertices per point
  TF_RETURN_IF_ERROR(c->Add(c->Dim(features, 2), 1, &simplex));
  c->set_output(0, c->MakeShape({batch, points, simplex}));
  c->set_output(1, c->MakeShape({batch, points, simplex}));
  c->set_output(2, c->MakeShape({batch, simplex, c->UnknownDim(), 2}));
  c->set_output(3, c->Vector(batch));
  return absl::OkStatus();
}

absl::Status FilterShape(InferenceContext* c) {
  ShapeHandle values, offsets, weights, neighbors, num_vertices;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &values));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &offsets));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &weights));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 4, &neighbors));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 1, &num_vertices));
  TF_RETURN_IF_ERROR(c->Merge(offsets, weights, &offsets));
  DimensionHandle batch = c->Dim(values, 0);
  for (ShapeHandle s : {offsets, neighbors, num_vertices}) {
    TF_RETURN_IF_ERROR(c->Merge(batch, c->Dim(s, 0), &batch));
  }
  DimensionHandle points = c->Dim(values, 1);
  TF_RETURN_IF_ERROR(c->Merge(points, c->Dim(offsets, 1), &points));
  DimensionHandle simplex = c->Dim(offsets, 2);
  TF_RETURN_IF_ERROR(c->Merge(simplex, c->Dim(neighbors, 1), &simplex));
  DimensionHandle pair;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(neighbors, 3), 2, &pair));
  c->set_output(0, c->MakeShape({batch, points, c->Dim(values, 2)}));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("Kerasseg>PermutohedralLattice")
    .Input("features: float")
    .Output("offsets: int32")
    .Output("weights: float")
    .Output("neighbors: int32")
    .Output("num_vertices: int32")
    .SetShapeFn(LatticeShape)
    .Doc(R"doc(
Builds the permutohedral lattice of each image of a batch.

features: [batch, points, d] float32, finite, |f| <= 1e6, 1 <= d <= 16; the
  features already divided by the kernel bandwidths, so that the filter
  approximates the Gaussian kernel exp(-|f_i - f_j|^2 / 2).
offsets: [batch, points, d + 1] vertex index of each point's simplex corners.
weights: [batch, points, d + 1] barycentric splat/slice weights.
neighbors: [batch, d + 1, max_vertices, 2] blur neighbours of each vertex
  along each lattice direction, -1 where absent or padding.
num_vertices: [batch] number of lattice vertices of each image.
)doc");

REGISTER_OP("Kerasseg>PermutohedralFilter")
    .Input("values: float")
    .Input("offsets: int32")
    .Input("weights: float")
    .Input("neighbors: int32")
    .Input("num_vertices: int32")
    .Attr("reverse: bool = false")
    .Output("output: float")
    .SetShapeFn(FilterShape)
    .Doc(R"doc(
Gaussian filtering of values with a lattice from PermutohedralLattice:
splat, blur along each lattice direction, slice.

values: [batch, points, channels] float32, finite.
reverse: blur the directions in reverse order, which applies the transposed
  filter (used for the gradient).
output: [batch, points, channels].
)doc");

}  // namespace kerasseg
