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

// Keys hash linearly, h = sum_i key[i] * kMultipliers[i] (mod 2^64), so that
// the hash of a neighbouring lattice point is an update of two terms rather
// than a recomputation; Finalize then mixes all the bits into the 32 used.
constexpr uint64_t kMultipliers[kMaxFeatureDims] = {
    0x51C9BC701E7EA419ULL, 0xF38B2FFC80A4DF5BULL, 0xA5AEC7978306D03BULL, 0xF3F49249DC28FF91ULL,
    0xE255ACCB1A466885ULL, 0xE512148239292D23ULL, 0x9F19950499DD251DULL, 0x6BAD6BE28E7AA6E9ULL,
    0x9293DE8FC88B2875ULL, 0xD7A7A3CC8C3D5F17ULL, 0xC6CD75E9BB049A79ULL, 0x7DABE929C4A334BFULL,
    0xC5E818FAC0433CBDULL, 0x70EB9A0A96263AE7ULL, 0x00A61F933D6C51E3ULL, 0x14AA4E719D3C7DEDULL};

uint64_t LinearHash(const int32_t* key, int d) {
  uint64_t h = 0;
  for (int i = 0; i < d; ++i) {
    h += static_cast<uint64_t>(static_cast<int64_t>(key[i])) * kMultipliers[i];
  }
  return h;
}

// The low bits of the result pick a hash table slot.
uint32_t Finalize(uint64_t h) {
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 27;
  return static_cast<uint32_t>(h >> 32);
}

// Whether two keys of d coordinates are equal. Not std::equal, which
// becomes a call to memcmp: too slow for a few integers on the hot path.
bool KeysEqual(const int32_t* a, const int32_t* b, int d) {
  int32_t difference = 0;
  for (int i = 0; i < d; ++i) difference |= a[i] ^ b[i];
  return difference == 0;
}

// Open-addressing (linear probing) hash table from lattice keys to vertex
// indices, with the caller supplying each key's hash. A slot holds the
// vertex index (-1: empty) and then the key, so that a probe is one memory
// access, which Prefetch can start early. Keys are also kept in insertion
// order: vertex v's key is keys()[v * d, (v + 1) * d).
class LatticeHashTable {
 public:
  LatticeHashTable(int key_size, int64_t expected_size)
      : key_size_(key_size), stride_(key_size + 1) {
    int64_t capacity = 1024;
    while (capacity < 2 * expected_size) capacity *= 2;
    slots_.assign(capacity * stride_, -1);
    mask_ = capacity - 1;
    keys_.reserve(expected_size * key_size);
  }

  int64_t size() const { return static_cast<int64_t>(keys_.size()) / key_size_; }
  const std::vector<int32_t>& keys() const { return keys_; }

  // Starts loading the slot where the search for a key of hash `hash` begins.
  void Prefetch(uint32_t hash) const {
#if defined(__GNUC__)
    __builtin_prefetch(slots_.data() + (hash & mask_) * stride_);
#endif
  }

  // Returns the vertex index of `key`, inserting it when absent.
  int32_t FindOrInsert(const int32_t* key, uint32_t hash) {
    // Keep the load factor under 1/2 so probe sequences stay short.
    if (2 * (size() + 1) > static_cast<int64_t>(mask_ + 1)) Grow();
    for (uint64_t slot = hash & mask_;; slot = (slot + 1) & mask_) {
      int32_t* entry = slots_.data() + slot * stride_;
      if (entry[0] < 0) {
        entry[0] = static_cast<int32_t>(size());
        std::copy(key, key + key_size_, entry + 1);
        keys_.insert(keys_.end(), key, key + key_size_);
        return entry[0];
      }
      if (KeysEqual(entry + 1, key, key_size_)) return entry[0];
    }
  }

  // Returns the vertex index of `key`, or -1. Safe to call concurrently.
  int32_t Find(const int32_t* key, uint32_t hash) const {
    for (uint64_t slot = hash & mask_;; slot = (slot + 1) & mask_) {
      const int32_t* entry = slots_.data() + slot * stride_;
      if (entry[0] < 0) return -1;
      if (KeysEqual(entry + 1, key, key_size_)) return entry[0];
    }
  }

 private:
  void Grow() {
    mask_ = 2 * mask_ + 1;
    slots_.assign((mask_ + 1) * stride_, -1);
    const int64_t n = size();
    for (int64_t v = 0; v < n; ++v) {
      const int32_t* key = keys_.data() + v * key_size_;
      uint64_t slot = Finalize(LinearHash(key, key_size_)) & mask_;
      while (slots_[slot * stride_] >= 0) slot = (slot + 1) & mask_;
      slots_[slot * stride_] = static_cast<int32_t>(v);
      std::copy(key, key + key_size_, slots_.data() + slot * stride_ + 1);
    }
  }

  int key_size_;
  int64_t stride_;
  uint64_t mask_;
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
  const double inv_d1 = 1.0 / d1;

  // Pass 1 (parallel, per point): the remainder-0 lattice point nearest to the
  // elevated feature, the rank of each coordinate, barycentric weights, and
  // the hash of each simplex corner's key. Vertex k of the simplex is rem0 +
  // k, minus d+1 on the coordinates ranked above d-k (the canonical simplex
  // of Adams et al.): corner k is corner k-1 plus 1 everywhere and minus d+1
  // on the coordinate ranked d-k+1, which updates its linear hash in O(1).
  uint64_t all_ones = 0;  // LinearHash of (1, ..., 1)
  for (int i = 0; i < d; ++i) all_ones += kMultipliers[i];
  // The offsets hold the remainder-0 points until pass 2 replaces them.
  std::vector<int8_t> ranks(num_points * d1);
  std::vector<uint32_t> hashes(num_points * d1);
  parallel_for(num_points, 50 * d1 * d1, [&](int64_t begin, int64_t end) {
    std::vector<double> elevated(d1), residual(d1), barycentric(d1 + 1);
    std::vector<int> by_rank(d1);
    for (int64_t p = begin; p < end; ++p) {
      const float* f = features + p * d;
      int32_t* rem0 = lattice.offsets.data() + p * d1;
      int8_t* rank = ranks.data() + p * d1;
      double sum = 0.0;
      for (int i = d; i >= 1; --i) {
        const double cf = f[i - 1] * scale[i - 1];
        elevated[i] = sum - i * cf;
        sum += cf;
      }
      elevated[0] = sum;

      int sum_rounded = 0;
      for (int i = 0; i <= d; ++i) {
        // Nearest multiple of d+1 (ties either way: both are as close).
        const int32_t multiple = static_cast<int32_t>(std::lrint(elevated[i] * inv_d1));
        rem0[i] = multiple * d1;
        sum_rounded += multiple;
        residual[i] = elevated[i] - rem0[i];
        rank[i] = 0;
      }
      // Branch-free: the comparisons are data dependent, so branches on them
      // would be mispredicted about half the time.
      for (int i = 0; i <= d; ++i) {
        for (int j = i + 1; j <= d; ++j) {
          const int smaller = residual[i] < residual[j];
          rank[i] += smaller;
          rank[j] += 1 - smaller;
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
        const double delta = (elevated[i] - rem0[i]) * inv_d1;
        barycentric[d - rank[i]] += delta;
        barycentric[d + 1 - rank[i]] -= delta;
      }
      barycentric[0] += 1.0 + barycentric[d1];
      for (int k = 0; k <= d; ++k) {
        lattice.weights[p * d1 + k] = static_cast<float>(barycentric[k]);
      }

      for (int i = 0; i <= d; ++i) by_rank[rank[i]] = i;
      uint64_t linear_hash = LinearHash(rem0, d);
      for (int k = 0; k <= d; ++k) {
        if (k > 0) {
          linear_hash += all_ones;
          const int i = by_rank[d - k + 1];
          if (i < d) linear_hash -= static_cast<uint64_t>(d1) * kMultipliers[i];
        }
        hashes[p * d1 + k] = Finalize(linear_hash);
      }
    }
  });

  // Pass 2 (sequential): insert the simplex corners of every point. (Hash
  // tables split by key among threads were tried: each thread still had to
  // walk every corner and the critical path did not shrink.)
  LatticeHashTable table(d, num_points / 4);
  std::vector<int32_t> keys(d1 * d), previous_keys(d1 * d);
  for (int64_t p = 0; p < num_points; ++p) {
    int32_t* offsets = lattice.offsets.data() + p * d1;  // rem0 until replaced below
    const int8_t* rank = ranks.data() + p * d1;
    const uint32_t* point_hashes = hashes.data() + p * d1;
    // Neighbouring pixels often share simplex corners when the features vary
    // slowly (positions; less so noisy colours), so a corner equal to the
    // same corner of the previous point reuses its vertex. The others'
    // slots are prefetched first, so that their cache misses overlap.
    for (int k = 0; k <= d; ++k) {
      // (Not from corner k-1's key: reading back what was just stored, with
      // a different vector width, stalls store forwarding.)
      int32_t* key = keys.data() + k * d;
      for (int i = 0; i < d; ++i) key[i] = offsets[i] + k - (rank[i] > d - k ? d1 : 0);
      if (p == 0 || point_hashes[k] != point_hashes[k - d1]) table.Prefetch(point_hashes[k]);
    }
    for (int k = 0; k <= d; ++k) {
      const int32_t* key = keys.data() + k * d;
      int32_t* previous = previous_keys.data() + k * d;
      if (p > 0 && point_hashes[k] == point_hashes[k - d1] && KeysEqual(key, previous, d)) {
        offsets[k] = offsets[k - d1];
      } else {
        offsets[k] = table.FindOrInsert(key, point_hashes[k]);
        std::copy(key, key + d, previous);
      }
    }
  }
  const int64_t m = table.size();
  lattice.num_vertices = m;
  const std::vector<int32_t>& vertex_keys = table.keys();

  // Pass 3 (parallel, read-only table): neighbours along each direction j.
  // The "plus" neighbour of v is key + (1, ..., 1, -d at j, 1, ..., 1) on the
  // first d coordinates; v is then the "minus" neighbour of that vertex, so
  // one lookup fills both. Distinct vertices have distinct plus neighbours,
  // so the threads never write the same entry.
  lattice.neighbors.assign(d1 * m * 2, -1);
  parallel_for(m, 20 * d1 * d, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> plus(d1 * d);
    std::vector<uint32_t> plus_hashes(d1);
    for (int64_t v = begin; v < end; ++v) {
      const int32_t* k = vertex_keys.data() + v * d;
      const uint64_t linear_hash = LinearHash(k, d) + all_ones;
      for (int j = 0; j <= d; ++j) {
        int32_t* key = plus.data() + j * d;
        for (int i = 0; i < d; ++i) key[i] = k[i] + 1;
        uint64_t hash = linear_hash;
        if (j < d) {
          key[j] -= d1;
          hash -= static_cast<uint64_t>(d1) * kMultipliers[j];
        }
        plus_hashes[j] = Finalize(hash);
        table.Prefetch(plus_hashes[j]);
      }
      for (int j = 0; j <= d; ++j) {
        const int32_t u = table.Find(plus.data() + j * d, plus_hashes[j]);
        if (u < 0) continue;
        lattice.neighbors[(j * m + v) * 2 + 1] = u;
        lattice.neighbors[(j * m + u) * 2] = static_cast<int32_t>(v);
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
  // neighbour (index -1), which keeps the blur loop branch-free. The slice
  // reads whole blocks of kBlock channels, so kBlock floats of padding follow.
  constexpr int kBlock = 8;
  std::vector<float> buffer((m + 1) * c + kBlock, 0.0f);
  std::vector<float> blurred((m + 1) * c + kBlock, 0.0f);

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
      const int32_t* vertices = offsets + p * d1;
      const float* point_weights = weights + p * d1;
      // Sums kBlock channels at a time in a fixed-size local array, which
      // the compiler keeps in registers: accumulating in `out` would chain
      // every corner's load-add-store on the previous one (few channels).
      for (int64_t ch0 = 0; ch0 < c; ch0 += kBlock) {
        float sum[kBlock] = {};
        for (int k = 0; k < d1; ++k) {
          const float w = alpha * point_weights[k];
          const float* row = buffer.data() + (static_cast<int64_t>(vertices[k]) + 1) * c + ch0;
          for (int i = 0; i < kBlock; ++i) sum[i] += w * row[i];
        }
        std::copy(sum, sum + std::min<int64_t>(kBlock, c - ch0), out + p * c + ch0);
      }
    }
  });
}

}  // namespace kerasseg
