// Permutohedral lattice: see permutohedral_lattice.h. The construction follows
// Adams, Baek and Davis (2010), section 3: elevate each feature vector onto the
// hyperplane sum(x) = 0 of R^(d+1), find the enclosing simplex of the A*_d
// lattice by rounding and sorting, and splat with barycentric weights.
#include "kerasseg/ops/cc/kernels/permutohedral_lattice.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace kerasseg {
namespace {

// Open-addressing (linear probing) hash table from lattice keys to vertex
// indices. A key is the first d coordinates of a lattice point; the last one
// is minus their sum. Keys live contiguously in `keys_` in insertion order,
// so vertex v's key is keys_[v * d, (v + 1) * d).
class LatticeHashTable {
 public:
  LatticeHashTable(int key_size, int64_t expected_size) : key_size_(key_size) {
    int64_t capacity = 1024;
    while (capacity < expected_size) capacity *= 2;
    slots_.assign(capacity, -1);
  }

  int64_t size() const {
    return static_cast<int64_t>(keys_.size()) / key_size_;
  }
  const std::vector<int32_t>& keys() const { return keys_; }

  // Returns the vertex index of `key`, inserting it when absent.
  int32_t FindOrInsert(const int32_t* key) {
    // Keep the load factor under 1/2 so probe sequences stay short.
    if (2 * (size() + 1) > static_cast<int64_t>(slots_.size())) Grow();
    const uint64_t mask = slots_.size() - 1;
    for (uint64_t slot = Hash(key) & mask;; slot = (slot + 1) & mask) {
      const int32_t entry = slots_[slot];
      if (entry < 0) {
        const int32_t index = static_cast<int32_t>(size());
        slots_[slot] = index;
        keys_.insert(keys_.end(), key, key + key_size_);
        return index;
      }
      if (Equal(entry, key)) return entry;
    }
  }

  // Returns the vertex index of `key`, or -1. Safe to call concurrently.
  int32_t Find(const int32_t* key) const {
    const uint64_t mask = slots_.size() - 1;
    for (uint64_t slot = Hash(key) & mask;; slot = (slot + 1) & mask) {
      const int32_t entry = slots_[slot];
      if (entry < 0) return -1;
      if (Equal(entry, key)) return entry;
    }
  }

 private:
  uint64_t Hash(const int32_t* key) const {
    uint64_t h = 0;
    for (int i = 0; i < key_size_; ++i) {
      h = (h ^ static_cast<uint32_t>(key[i])) * 0x9E3779B97F4A7C15ULL;
    }
    // Final avalanche (splitmix64) so linear probing sees well-spread slots
    // although neighbouring lattice points differ in few bits.
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    return h;
  }

  bool Equal(int32_t entry, const int32_t* key) const {
    const int32_t* stored = keys_.data() + static_cast<int64_t>(entry) * key_size_;
    return std::equal(stored, stored + key_size_, key);
  }

  void Grow() {
    std::vector<int32_t> slots(slots_.size() * 2, -1);
    const uint64_t mask = slots.size() - 1;
    const int64_t n = size();
    for (int64_t v = 0; v < n; ++v) {
      uint64_t slot = Hash(keys_.data() + v * key_size_) & mask;
      while (slots[slot] >= 0) slot = (slot + 1) & mask;
      slots[slot] = static_cast<int32_t>(v);
    }
    slots_ = std::move(slots);
  }

  int key_size_;
  std::vector<int32_t> slots_;
  std::vector<int32_t> keys_;
};

}  // namespace

Lattice BuildLattice(const float* features, int64_t num_points, int dims,
                     const ParallelFor& parallel_for) {
  const int d = dims;
  const int d1 = d + 1;
  Lattice lattice;
  lattice.dims = d;
  lattice.num_points = num_points;
  lattice.offsets.resize(num_points * d1);
  lattice.weights.resize(num_points * d1);

  // Scale so that the lattice blur (one [1 2 1] pass per lattice direction)
  // approximates a unit-variance Gaussian in feature space (Adams et al.).
  std::vector<double> scale(d);
  const double inv_std = std::sqrt(2.0 / 3.0) * d1;
  for (int i = 0; i < d; ++i) scale[i] = inv_std / std::sqrt((i + 1.0) * (i + 2.0));

  // Pass 1 (parallel, per point): the remainder-0 lattice point nearest to the
  // elevated feature, the rank of each coordinate, and barycentric weights.
  // The vertex offsets hold the remainder-0 coordinates until pass 2.
  std::vector<int8_t> ranks(num_points * d1);
  parallel_for(num_points, 40 * d1 * d1, [&](int64_t begin, int64_t end) {
    std::vector<double> elevated(d1), residual(d1), barycentric(d1 + 1);
    std::vector<int32_t> rem0(d1);
    std::vector<int> rank(d1);
    for (int64_t p = begin; p < end; ++p) {
      const float* f = features + p * d;
      double sum = 0.0;
      for (int i = d; i >= 1; --i) {
        const double cf = f[i - 1] * scale[i - 1];
        elevated[i] = sum - i * cf;
        sum += cf;
      }
      elevated[0] = sum;

      int sum_rounded = 0;
      for (int i = 0; i <= d; ++i) {
        const double multiple = std::round(elevated[i] / d1);
        rem0[i] = static_cast<int32_t>(multiple) * d1;
        sum_rounded += static_cast<int>(multiple);
        residual[i] = elevated[i] - rem0[i];
        rank[i] = 0;
      }
      for (int i = 0; i <= d; ++i) {
        for (int j = i + 1; j <= d; ++j) {
          if (residual[i] < residual[j]) ++rank[i]; else ++rank[j];
        }
      }
      // Rounding may leave the point off the hyperplane: move the coordinates
      // that were rounded up the most (or down) by d+1 to return to it.
      if (sum_rounded != 0) {
        for (int i = 0; i <= d; ++i) {
          rank[i] += sum_rounded;
          if (rank[i] < 0) {
            rank[i] += d1;
            rem0[i] += d1;
          } else if (rank[i] > d) {
            rank[i] -= d1;
            rem0[i] -= d1;
          }
        }
      }
      std::fill(barycentric.begin(), barycentric.end(), 0.0);
      for (int i = 0; i <= d; ++i) {
        const double delta = (elevated[i] - rem0[i]) / d1;
        barycentric[d - rank[i]] += delta;
        barycentric[d + 1 - rank[i]] -= delta;
      }
      barycentric[0] += 1.0 + barycentric[d1];
      for (int k = 0; k <= d; ++k) {
        lattice.weights[p * d1 + k] = static_cast<float>(barycentric[k]);
        lattice.offsets[p * d1 + k] = rem0[k];
        ranks[p * d1 + k] = static_cast<int8_t>(rank[k]);
      }
    }
  });

  // Pass 2 (sequential): insert the d+1 simplex vertices of every point.
  // Neighbouring pixels often share simplex corners when the features vary
  // slowly (positions; less so noisy colours), so each vertex is first
  // compared with the same corner of the previous point, skipping those
  // hash lookups and their cache misses.
  LatticeHashTable table(d, num_points / 4);
  std::vector<int32_t> corner_keys(d1 * d), previous_keys(d1 * d, 0);
  std::vector<int32_t> previous_vertices(d1, -1);
  for (int64_t p = 0; p < num_points; ++p) {
    int32_t* offsets = lattice.offsets.data() + p * d1;
    const int8_t* rank = ranks.data() + p * d1;
    // Vertex k of the enclosing simplex is rem0 + k, minus d+1 on the
    // coordinates ranked above d-k (the canonical simplex of Adams et al.).
    for (int k = 0; k <= d; ++k) {
      int32_t* key = corner_keys.data() + k * d;
      for (int i = 0; i < d; ++i) key[i] = offsets[i] + k - (rank[i] > d - k ? d1 : 0);
    }
    for (int k = 0; k <= d; ++k) {
      const int32_t* key = corner_keys.data() + k * d;
      int32_t* previous = previous_keys.data() + k * d;
      if (previous_vertices[k] < 0 || !std::equal(key, key + d, previous)) {
        previous_vertices[k] = table.FindOrInsert(key);
        std::copy(key, key + d, previous);
      }
      offsets[k] = previous_vertices[k];
    }
  }
  lattice.num_vertices = table.size();

  // Pass 3 (parallel, read-only table): neighbours along each direction j,
  // key -/+ (1, ..., 1, -d at j, 1, ..., 1) restricted to the first d coords.
  const int64_t m = lattice.num_vertices;
  lattice.neighbors.assign(d1 * m * 2, -1);
  const std::vector<int32_t>& keys = table.keys();
  parallel_for(m, 60 * d1 * d, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> minus(d), plus(d);
    for (int64_t v = begin; v < end; ++v) {
      const int32_t* k = keys.data() + v * d;
      for (int j = 0; j <= d; ++j) {
        for (int i = 0; i < d; ++i) {
          minus[i] = k[i] - 1;
          plus[i] = k[i] + 1;
        }
        if (j < d) {
          minus[j] = k[j] + d;
          plus[j] = k[j] - d;
        }
        lattice.neighbors[(j * m + v) * 2] = table.Find(minus.data());
        lattice.neighbors[(j * m + v) * 2 + 1] = table.Find(plus.data());
      }
    }
  });
  return lattice;
}

void FilterWithLattice(const int32_t* offsets, const float* weights,
                       const int32_t* neighbors, int64_t neighbor_stride,
                       int64_t num_vertices, int dims, int64_t num_points, int64_t channels,
                       const float* values, bool reverse, float* out,
                       int num_threads, const ParallelFor& parallel_for) {
  const int d1 = dims + 1;
  const int64_t c = channels;
  const int64_t m = num_vertices;
  // Row v + 1 holds vertex v; row 0 stays zero and stands for an absent
  // neighbour (index -1), which keeps the blur loop branch-free.
  std::vector<float> buffer((m + 1) * c, 0.0f);
  std::vector<float> blurred((m + 1) * c, 0.0f);

  // Splat. Scattering from points would make threads collide, so each shard
  // owns a range of vertices and takes from every point only what lands in
  // its range: the shards write disjoint rows and share only reads.
  const int64_t shards = std::max<int64_t>(1, std::min<int64_t>(num_threads, m));
  parallel_for(shards, num_points * d1 * (c + 4), [&](int64_t begin, int64_t end) {
    const int64_t v0 = m * begin / shards;
    const int64_t v1 = m * end / shards;
    for (int64_t p = 0; p < num_points; ++p) {
      const float* in = values + p * c;
      for (int k = 0; k < d1; ++k) {
        const int64_t v = offsets[p * d1 + k];
        if (v < v0 || v >= v1) continue;
        const float w = weights[p * d1 + k];
        float* row = buffer.data() + (v + 1) * c;
        for (int64_t ch = 0; ch < c; ++ch) row[ch] += w * in[ch];
      }
    }
  });

  // Blur with [1 2 1] / 2 along each lattice direction.
  for (int step = 0; step < d1; ++step) {
    const int64_t j = reverse ? d1 - 1 - step : step;
    const int32_t* nb = neighbors + j * neighbor_stride * 2;
    parallel_for(m, 3 * c, [&](int64_t begin, int64_t end) {
      for (int64_t v = begin; v < end; ++v) {
        const float* self = buffer.data() + (v + 1) * c;
        const float* n1 = buffer.data() + (static_cast<int64_t>(nb[2 * v]) + 1) * c;
        const float* n2 = buffer.data() + (static_cast<int64_t>(nb[2 * v + 1]) + 1) * c;
        float* dst = blurred.data() + (v + 1) * c;
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] = self[ch] + 0.5f * (n1[ch] + n2[ch]);
      }
    });
    std::swap(buffer, blurred);
  }

  // Slice. The constant rescales the lattice's kernel so that its peak is
  // close to that of the Gaussian it approximates.
  const float alpha = 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(dims)));
  parallel_for(num_points, 2 * d1 * c, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* dst = out + p * c;
      std::fill(dst, dst + c, 0.0f);
      for (int k = 0; k < d1; ++k) {
        const float w = alpha * weights[p * d1 + k];
        const float* row = buffer.data() + (static_cast<int64_t>(offsets[p * d1 + k]) + 1) * c;
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] += w * row[ch];
      }
    }
  });
}

}  // namespace kerasseg
