// The arithmetic of sharded data parallelism over the flat training buffers
// (runtime/train/training_state.h): which contiguous range of elements each rank owns,
// how the gradient buffer is cut into reduction buckets, and which parts of
// a checkpoint saved by N ranks a rank of an M-rank job must read.
//
// The flat buffers are padded to `padded()` elements so that the world
// size divides them into equal shards, each a multiple of the alignment:
// then the reduce-scatter of the whole gradient buffer has equal chunks and
// every shard starts aligned. Padding elements are zero and stay zero.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "formats/artifact.h"
#include "runtime/exec/range.h"

namespace tlc::shard {

struct ShardError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Layout {
  int64_t elements = 0;  // the flat buffer (its own padding between tensors included)
  int world = 1;
  int64_t shard = 0;     // elements per rank: a multiple of the alignment

  int64_t padded() const { return shard * world; }
  // Rank r's equal chunk of the padded buffer: what reduce-scatter gives it.
  Range shardOf(int rank) const;
  // The part of shardOf(rank) inside the real buffer (may be empty): what
  // the rank keeps optimizer state for and saves.
  Range ownedBy(int rank) const;
  int ownerOf(int64_t element) const;  // element in [0, padded())
};

// Throws ShardError unless elements >= 0, world >= 1, align >= 1.
Layout makeLayout(int64_t elements, int world, int64_t align = artifact::kFlatAlignment);

// A piece of the gradient buffer reduced as one collective, to its owner.
struct Bucket {
  Range range;
  int owner = 0;
};

// Buckets covering [0, padded()) in flat order: at most `bucketElements`
// each (rounded up to the alignment), cut at every shard boundary so that
// each lies in one rank's shard. A bucket is reduced to its owner (MPI:
// gather + rank-order sum; NCCL: ncclReduce) as soon as the backward pass
// has written all of it; the backward pass produces the last parameters'
// gradients first, so buckets are started from the end.
std::vector<Bucket> buckets(const Layout &l, int64_t bucketElements, int64_t align = artifact::kFlatAlignment);

// What one rank holds of the training state under ZeRO stage `zero`
// (0 replicated, 1 optimizer state sharded, 2 gradients too, 3 parameters
// too), in bytes, for parameters of `paramBytes` (2 bf16, 4 f32) and f32
// gradients, master weights and moments. Sharded buffers are the rank's
// owned range; full ones the padded buffer once zero > 0 (equal chunks).
// ZeRO-2 and 3 also need `gradScratch`: the compiled step writes a whole
// micro-batch's gradients into one padded flat buffer before its buckets are
// reduced, so the rest of that buffer, beside the owned range, is scratch
// (0 where the gradients themselves are full): grads + gradScratch is the
// buffer allocated; on the host the reduced scratch is released, so only the
// gradients not yet reduced are resident. ZeRO-3's `paramGathered`: what a
// rank holds of the others' parameters at once, `gatheredElements` (the
// communication plan's peak, runtime/exec/comm_points.h), or with -1 the
// rest of the whole buffer (gathered for the step, as on device buffers).
struct StateBytes {
  int64_t params = 0, paramGathered = 0, grads = 0, gradScratch = 0, master = 0, moments = 0;
  int64_t total() const { return params + paramGathered + grads + gradScratch + master + moments; }
};
StateBytes stateBytes(const Layout &l, int zero, int rank, int64_t paramBytes, int64_t gatheredElements = -1);

// Resharding a checkpoint: `saved[i]` is the flat range file i holds (its
// owned range when it was written). They must tile [0, elements) in order.
// A read copies `count` elements starting `fileElement` elements into file
// `file`'s data to `destElement` elements after the start of `wanted`.
struct Read {
  int file = 0;
  int64_t fileElement = 0;
  int64_t destElement = 0;
  int64_t count = 0;
  // The same read in bytes of a buffer of `elementBytes`-byte elements that
  // starts `base` bytes into the file.
  uint64_t fileByte(size_t elementBytes, uint64_t base = 0) const {
    return base + static_cast<uint64_t>(fileElement) * elementBytes;
  }
  uint64_t bytes(size_t elementBytes) const { return static_cast<uint64_t>(count) * elementBytes; }
};

// The reads that fill `wanted` (clipped to [0, elements): padding beyond the
// buffer is zero and read from nowhere), in order. Throws ShardError naming
// the file when the saved ranges leave a gap, overlap, or overrun.
std::vector<Read> reshard(const std::vector<Range> &saved, int64_t elements, Range wanted);

// The owned ranges of a layout, as a checkpoint written by it records them.
std::vector<Range> ownedRanges(const Layout &l);

}  // namespace tlc::shard
