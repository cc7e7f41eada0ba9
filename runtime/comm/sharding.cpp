#include "runtime/comm/sharding.h"

#include <algorithm>
#include <string>

namespace tlc::shard {

static int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

Layout makeLayout(int64_t elements, int world, int64_t align) {
  if (elements < 0) throw ShardError("sharding: negative element count " + std::to_string(elements));
  if (world < 1) throw ShardError("sharding: world size must be at least 1, got " + std::to_string(world));
  if (align < 1) throw ShardError("sharding: alignment must be at least 1, got " + std::to_string(align));
  Layout l;
  l.elements = elements;
  l.world = world;
  l.shard = roundUp((elements + world - 1) / world, align);
  return l;
}

Range Layout::shardOf(int rank) const {
  if (rank < 0 || rank >= world)
    throw ShardError("sharding: rank " + std::to_string(rank) + " outside a world of " + std::to_string(world));
  return {rank * shard, (rank + 1) * shard};
}

Range Layout::ownedBy(int rank) const {
  Range s = shardOf(rank);
  return {std::min(s.begin, elements), std::min(s.end, elements)};
}

int Layout::ownerOf(int64_t element) const {
  if (element < 0 || element >= padded())
    throw ShardError("sharding: element " + std::to_string(element) + " outside the padded buffer of " +
                     std::to_string(padded()));
  return static_cast<int>(element / shard);
}

std::vector<Bucket> buckets(const Layout &l, int64_t bucketElements, int64_t align) {
  if (bucketElements < 1)
    throw ShardError("sharding: bucket size must be at least 1 element, got " + std::to_string(bucketElements));
  int64_t size = roundUp(bucketElements, align);
  std::vector<Bucket> out;
  for (int r = 0; r < l.world; ++r) {
    Range s = l.shardOf(r);
    for (int64_t b = s.begin; b < s.end; b += size) out.push_back({{b, std::min(s.end, b + size)}, r});
  }
  return out;
}

StateBytes stateBytes(const Layout &l, int zero, int rank, int64_t paramBytes, int64_t gatheredElements) {
  if (zero < 0 || zero > 3) throw ShardError("sharding: zero must be 0, 1, 2 or 3, got " + std::to_string(zero));
  int64_t full = zero == 0 ? l.elements : l.padded();
  int64_t mine = zero == 0 ? l.elements : l.ownedBy(rank).size();
  StateBytes b;
  b.params = (zero >= 3 ? mine : full) * paramBytes;
  int64_t others = gatheredElements < 0 ? full - mine : std::min(full - mine, gatheredElements);
  b.paramGathered = zero >= 3 ? others * paramBytes : 0;
  b.grads = (zero >= 2 ? mine : full) * 4;
  b.gradScratch = zero >= 2 ? (full - mine) * 4 : 0;
  b.master = mine * 4;
  b.moments = 2 * mine * 4;
  return b;
}

std::vector<Range> ownedRanges(const Layout &l) {
  std::vector<Range> out;
  for (int r = 0; r < l.world; ++r) out.push_back(l.ownedBy(r));
  return out;
}

std::vector<Read> reshard(const std::vector<Range> &saved, int64_t elements, Range wanted) {
  int64_t next = 0;
  for (size_t i = 0; i < saved.size(); ++i) {
    const Range &s = saved[i];
    std::string file = "checkpoint shard " + std::to_string(i);
    if (s.begin != next || s.end < s.begin)
      throw ShardError(file + " holds elements [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
                       ") but the previous shards end at " + std::to_string(next) +
                       " (the shards must tile the buffer in order)");
    next = s.end;
  }
  if (next != elements)
    throw ShardError("the checkpoint's " + std::to_string(saved.size()) + " shards cover " + std::to_string(next) +
                     " elements but the buffer has " + std::to_string(elements));
  std::vector<Read> out;
  int64_t begin = std::max<int64_t>(0, wanted.begin), end = std::min(elements, wanted.end);
  for (size_t i = 0; i < saved.size() && begin < end; ++i) {
    int64_t lo = std::max(begin, saved[i].begin), hi = std::min(end, saved[i].end);
    if (lo < hi) out.push_back({static_cast<int>(i), lo - saved[i].begin, lo - wanted.begin, hi - lo});
  }
  return out;
}

}  // namespace tlc::shard
