// The sharding arithmetic, checked exhaustively on small sizes, and the
// single-process communicator and rank-order sum the MPI plugin relies on.
#include "runtime/comm/sharding.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>
#include <random>

#include "runtime/comm/comm_common.h"
#include "runtime/comm/communicator.h"
#include "formats/half.h"

namespace tlc::shard {
namespace {

TEST(Sharding, LayoutTilesThePaddedBufferInEqualAlignedShards) {
  for (int64_t align : {1, 4, 64})
    for (int world = 1; world <= 9; ++world)
      for (int64_t n = 0; n <= 400; ++n) {
        Layout l = makeLayout(n, world, align);
        SCOPED_TRACE("n=" + std::to_string(n) + " world=" + std::to_string(world) + " align=" + std::to_string(align));
        ASSERT_EQ(l.shard % align, 0);
        ASSERT_GE(l.padded(), n);
        // As little padding as equal aligned shards allow.
        ASSERT_LT(l.padded() - n, static_cast<int64_t>(world) * align);
        int64_t owned = 0;
        for (int r = 0; r < world; ++r) {
          Range s = l.shardOf(r), o = l.ownedBy(r);
          ASSERT_EQ(s.begin, r * l.shard);
          ASSERT_EQ(s.size(), l.shard);
          ASSERT_TRUE(o.begin == s.begin || o.size() == 0);
          ASSERT_LE(o.end, n);
          ASSERT_GE(o.size(), 0);
          owned += o.size();
          for (int64_t e = s.begin; e < s.end; ++e) ASSERT_EQ(l.ownerOf(e), r);
        }
        ASSERT_EQ(owned, n);  // the owned ranges tile the real buffer
      }
}

TEST(Sharding, BucketsCoverEachShardWithinOneOwner) {
  for (int64_t align : {1, 64})
    for (int world = 1; world <= 6; ++world)
      for (int64_t n : {0, 1, 63, 64, 65, 200, 1000, 4099})
        for (int64_t bucket : {1, 7, 64, 100, 1000, 100000}) {
          Layout l = makeLayout(n, world, align);
          std::vector<Bucket> bs = buckets(l, bucket, align);
          SCOPED_TRACE("n=" + std::to_string(n) + " world=" + std::to_string(world) + " bucket=" + std::to_string(bucket));
          int64_t next = 0;
          int64_t limit = (bucket + align - 1) / align * align;
          for (const Bucket &b : bs) {
            ASSERT_EQ(b.range.begin, next);
            ASSERT_GT(b.range.size(), 0);
            ASSERT_LE(b.range.size(), limit);
            ASSERT_EQ(b.range.begin % align, 0);
            Range s = l.shardOf(b.owner);
            ASSERT_GE(b.range.begin, s.begin);
            ASSERT_LE(b.range.end, s.end);
            next = b.range.end;
          }
          ASSERT_EQ(next, l.padded());
        }
}

// A checkpoint written by N ranks, read back by every rank of an M-rank job:
// the reads reproduce exactly the wanted slice of the original buffer.
TEST(Sharding, ReshardFromNToMRanksReadsExactlyTheWantedElements) {
  for (int64_t align : {1, 64})
    for (int64_t n : {1, 2, 5, 63, 64, 65, 129, 300, 1000})
      for (int from = 1; from <= 6; ++from)
        for (int to = 1; to <= 6; ++to) {
          std::vector<int> global(static_cast<size_t>(n));
          std::iota(global.begin(), global.end(), 1000);
          Layout saving = makeLayout(n, from, align);
          std::vector<Range> saved = ownedRanges(saving);
          std::vector<std::vector<int>> files;
          for (const Range &r : saved) files.emplace_back(global.begin() + r.begin, global.begin() + r.end);
          Layout loading = makeLayout(n, to, align);
          for (int rank = 0; rank < to; ++rank) {
            Range want = loading.shardOf(rank);
            std::vector<int> got(static_cast<size_t>(want.size()), 0);
            for (const Read &rd : reshard(saved, n, want)) {
              ASSERT_GE(rd.fileElement, 0);
              ASSERT_LE(rd.fileElement + rd.count, saved[static_cast<size_t>(rd.file)].size());
              ASSERT_EQ(rd.fileByte(4, 16), 16 + static_cast<uint64_t>(rd.fileElement) * 4);
              ASSERT_EQ(rd.bytes(2), static_cast<uint64_t>(rd.count) * 2);
              for (int64_t k = 0; k < rd.count; ++k) {
                int &slot = got[static_cast<size_t>(rd.destElement + k)];
                ASSERT_EQ(slot, 0) << "element read twice";
                slot = files[static_cast<size_t>(rd.file)][static_cast<size_t>(rd.fileElement + k)];
              }
            }
            for (int64_t e = want.begin; e < want.end; ++e) {
              int expected = e < n ? global[static_cast<size_t>(e)] : 0;  // padding: zero, read from nowhere
              ASSERT_EQ(got[static_cast<size_t>(e - want.begin)], expected)
                  << "n=" << n << " from " << from << " to " << to << " rank " << rank << " element " << e;
            }
          }
        }
}

// Optimizer state per rank is 1/N of the total (to within the padding).
TEST(Sharding, OptimizerStatePerRankIsOneNth) {
  const int64_t n = 4917504;  // the tiny preset's parameters
  for (int world : {1, 2, 3, 4, 8}) {
    Layout l = makeLayout(n, world);
    StateBytes whole = stateBytes(makeLayout(n, 1), 0, 0, 2);
    int64_t sum = 0;
    for (int r = 0; r < world; ++r) {
      StateBytes z1 = stateBytes(l, 1, r, 2), z2 = stateBytes(l, 2, r, 2), z3 = stateBytes(l, 3, r, 2);
      EXPECT_LE(z1.master + z1.moments, (whole.master + whole.moments) / world + 12 * artifact::kFlatAlignment);
      EXPECT_EQ(z1.params, l.padded() * 2);
      EXPECT_EQ(z1.grads, l.padded() * 4);
      EXPECT_EQ(z2.grads, l.ownedBy(r).size() * 4);
      EXPECT_EQ(z2.grads + z2.gradScratch, l.padded() * 4);  // one padded buffer, as zero=1 today
      EXPECT_EQ(z3.params, l.ownedBy(r).size() * 2);
      EXPECT_EQ(z3.params + z3.paramGathered, l.padded() * 2);  // gathered whole for the step
      EXPECT_EQ(z3.grads + z3.gradScratch, l.padded() * 4);
      sum += z1.master + z1.moments;
    }
    EXPECT_EQ(sum, whole.master + whole.moments);  // no optimizer state twice
  }
  EXPECT_EQ(stateBytes(makeLayout(10, 1), 0, 0, 4).total(), 10 * (4 + 4 + 4 + 8));
  EXPECT_THROW(stateBytes(makeLayout(10, 1), 4, 0, 2), ShardError);
}

// docs/distributed.md's resharding example, read by rank 1 of 2.
TEST(Sharding, TheDocumentedExample) {
  std::vector<Range> saved = ownedRanges(makeLayout(1000, 4));
  ASSERT_EQ(saved.size(), 4u);
  EXPECT_EQ(saved[3].begin, 768);
  EXPECT_EQ(saved[3].end, 1000);
  Range want = makeLayout(1000, 2).shardOf(1);
  EXPECT_EQ(want.begin, 512);
  EXPECT_EQ(want.end, 1024);
  std::vector<Read> reads = reshard(saved, 1000, want);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].file, 2);
  EXPECT_EQ(reads[0].fileElement, 0);
  EXPECT_EQ(reads[0].destElement, 0);
  EXPECT_EQ(reads[0].count, 256);
  EXPECT_EQ(reads[1].file, 3);
  EXPECT_EQ(reads[1].destElement, 256);
  EXPECT_EQ(reads[1].count, 232);
}

TEST(Sharding, BadInputIsAClearError) {
  EXPECT_THROW(makeLayout(-1, 2), ShardError);
  EXPECT_THROW(makeLayout(10, 0), ShardError);
  EXPECT_THROW(makeLayout(10, 2, 0), ShardError);
  EXPECT_THROW(makeLayout(10, 2).shardOf(2), ShardError);
  EXPECT_THROW(buckets(makeLayout(10, 2), 0), ShardError);
  try {
    reshard({{0, 10}, {12, 20}}, 20, {0, 20});
    FAIL() << "a gap was accepted";
  } catch (const ShardError &e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint shard 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reshard({{0, 10}, {10, 19}}, 20, {0, 20}), ShardError);  // short
  EXPECT_THROW(reshard({{0, 10}, {5, 20}}, 20, {0, 20}), ShardError);   // overlap
}

}  // namespace
}  // namespace tlc::shard

namespace tlc::comm {
namespace {

TEST(Comm, RankOrderSumMatchesALeftFold) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-3, 3);
  const int n = 4;
  const size_t count = 257;
  std::vector<float> in(n * count);
  for (float &x : in) x = u(rng);
  std::vector<float> out(count);
  sumBlocksInOrder(in.data(), count, n, out.data(), count, DType::F32);
  for (size_t i = 0; i < count; ++i) {
    float fold = in[i];
    for (int r = 1; r < n; ++r) fold += in[r * count + i];
    ASSERT_EQ(out[i], fold);
  }
  // bf16: summed in f32, rounded once.
  std::vector<uint16_t> hin(n * count), hout(count);
  for (size_t i = 0; i < hin.size(); ++i) hin[i] = floatToBf16(in[i]);
  sumBlocksInOrder(hin.data(), count, n, hout.data(), count, DType::BF16);
  for (size_t i = 0; i < count; ++i) {
    float fold = bf16ToFloat(hin[i]);
    for (int r = 1; r < n; ++r) fold += bf16ToFloat(hin[r * count + i]);
    ASSERT_EQ(hout[i], floatToBf16(fold));
  }
  EXPECT_THROW(sumBlocksInOrder(hin.data(), count, n, hout.data(), count, DType::U8), CommError);
}

TEST(Comm, SingleProcessCollectivesAreCopies) {
  unsetenv("OMPI_COMM_WORLD_SIZE");
  std::unique_ptr<Communicator> c = makeCommunicator({});
  ASSERT_EQ(c->size(), 1);
  ASSERT_EQ(c->rank(), 0);
  std::vector<float> a = {1.5f, -2, 3}, b(3);
  c->allReduce(a.data(), 3, DType::F32);
  EXPECT_EQ(a, (std::vector<float>{1.5f, -2, 3}));
  c->reduceScatter(a.data(), b.data(), 3, DType::F32);
  EXPECT_EQ(b, a);
  std::fill(b.begin(), b.end(), 0.f);
  c->allGather(a.data(), b.data(), 3, DType::F32);
  EXPECT_EQ(b, a);
  EXPECT_THROW(c->broadcast(a.data(), 3, DType::F32, 1), CommError);  // no rank 1
  EXPECT_THROW(c->allReduce(a.data(), 3, DType::U8), CommError);     // sums need a float type
  c->barrier();
}

TEST(Comm, LauncherDetectionAndBackendChoice) {
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  setenv("OMPI_COMM_WORLD_RANK", "2", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  Launch l = detectLaunch();
  EXPECT_EQ(l.launcher, "open mpi");
  EXPECT_EQ(l.size, 4);
  EXPECT_EQ(l.rank, 2);
  EXPECT_EQ(l.localRank, 1);
  // Several ranks but no plugin: a clear error, never a silent single run.
  Options o;
  o.mpiPlugin = "/nonexistent/libtl_comm_mpi.so";
  try {
    makeCommunicator(o);
    FAIL() << "started without the MPI plugin";
  } catch (const CommError &e) {
    std::string m = e.what();
    EXPECT_NE(m.find("started by open mpi with 4 ranks"), std::string::npos) << m;
    EXPECT_NE(m.find("libtl_comm_mpi.so"), std::string::npos) << m;
  }
  o.backend = "single";
  EXPECT_THROW(makeCommunicator(o), CommError);
  unsetenv("OMPI_COMM_WORLD_SIZE");

  // The other launchers' variables.
  setenv("PMI_SIZE", "8", 1);
  setenv("PMI_RANK", "5", 1);
  setenv("MPI_LOCALRANKID", "3", 1);
  l = detectLaunch();
  EXPECT_EQ(l.launcher, "pmi");
  EXPECT_EQ(l.size, 8);
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.localRank, 3);
  unsetenv("PMI_SIZE");
  unsetenv("PMI_RANK");
  unsetenv("MPI_LOCALRANKID");
  setenv("SLURM_PROCID", "1", 1);
  setenv("SLURM_NTASKS", "2", 1);
  setenv("SLURM_LOCALID", "1", 1);
  l = detectLaunch();
  EXPECT_EQ(l.launcher, "slurm");
  EXPECT_EQ(l.size, 2);
  EXPECT_EQ(l.rank, 1);
  setenv("PMIX_RANK", "1", 1);
  EXPECT_EQ(detectLaunch().launcher, "pmix");
  unsetenv("PMIX_RANK");
  setenv("SLURM_NTASKS", "1", 1);  // srun -n 1: one rank, no MPI needed
  EXPECT_EQ(makeCommunicator({})->describe(), "single process");
  unsetenv("SLURM_PROCID");
  unsetenv("SLURM_NTASKS");
  unsetenv("SLURM_LOCALID");
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  o.backend = "gloo";
  EXPECT_THROW(makeCommunicator(o), CommError);
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  o.backend = "auto";
  o.timeoutSeconds = 0;
  EXPECT_THROW(makeCommunicator(o), CommError);  // comm_timeout_s must be positive
}

}  // namespace
}  // namespace tlc::comm
