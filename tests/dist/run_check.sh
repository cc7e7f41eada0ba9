#!/usr/bin/env bash
# Failure-path checks of tl-comm-check: each must end with a non-zero status
# and a message saying what happened, and never hang (bounded by `timeout`).
#   run_check.sh hang CHECK MPIEXEC        rank 1 of 3 sleeps: the others time out naming it
#   run_check.sh exit CHECK MPIEXEC        rank 1 of 3 exits early: the job ends naming it
#   run_check.sh kill CHECK MPIEXEC        rank 1 of 3 is killed (SIGKILL): the job ends naming it
#   run_check.sh throw CHECK MPIEXEC       rank 1 of 3 fails alone: its error, the job ends
#   run_check.sh disagree CHECK MPIEXEC    rank 2 of 3 has another artifact: every rank stops
#   run_check.sh plugin-missing CHECK      "started by a launcher", plugin absent
#   run_check.sh world-mismatch CHECK      the launcher says 2 ranks, MPI joins 1 (no launcher support)
#   run_check.sh nccl-no-gpu CHECK         NCCL without a CUDA driver: the driver's error, exactly
#   run_check.sh nccl CHECK                the NCCL check itself (a GPU: tools/gpu/check.sh runs it too)
# A check that cannot run here exits 77, which ctest reports as skipped.
set -u
mode=$1 check=$2 mpiexec=${3:-}
mpirun=("$mpiexec" --allow-run-as-root --oversubscribe)
no_driver="^tl-comm-check: comm: NCCL needs a CUDA GPU, and cannot load the CUDA driver \\(libcuda\\.so\\.1\\):"
case $mode in
  hang)
    out=$(timeout 60 "${mpirun[@]}" -np 3 "$check" --timeout 3 --hang-rank 1 2>&1); rc=$?
    expect="rank 1 did not arrive" ;;
  exit)
    out=$(timeout 60 "${mpirun[@]}" -np 3 "$check" --timeout 3 --exit-rank 1 2>&1); rc=$?
    expect="rank 1 did not arrive|process rank 1 " ;;
  kill)
    out=$(timeout 60 "${mpirun[@]}" -np 3 "$check" --timeout 30 --kill-rank 1 2>&1); rc=$?
    expect="rank 1 .*signal 9|rank 1 did not arrive" ;;
  throw)
    out=$(timeout 60 "${mpirun[@]}" -np 3 "$check" --timeout 30 --throw-rank 1 2>&1); rc=$?
    expect="an error on this rank alone" ;;
  disagree)
    out=$(timeout 60 "${mpirun[@]}" -np 3 "$check" --timeout 10 --disagree-rank 2 2>&1); rc=$?
    expect="disagree on the artifact: rank\\(s\\) 2 differ from rank 0" ;;
  plugin-missing)
    out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 TLC_COMM_MPI_PLUGIN=/nonexistent/libtl_comm_mpi.so \
          timeout 60 "$check" 2>&1); rc=$?
    expect="started by open mpi with 2 ranks, but cannot load the MPI plugin" ;;
  world-mismatch)
    out=$(SLURM_NTASKS=2 SLURM_PROCID=0 SLURM_JOB_ID=1 timeout 60 "$check" 2>&1); rc=$?
    expect="slurm started 2 ranks, but MPI joined 1 of them" ;;
  nccl-no-gpu)
    out=$(timeout 120 "$check" --backend nccl 2>&1); rc=$?
    if [ $rc -eq 0 ]; then echo "SKIP: the CUDA driver loads here, so its absence cannot be checked"; exit 77; fi
    expect=$no_driver ;;
  nccl)
    out=$(timeout 120 "$check" --backend nccl 2>&1); rc=$?
    echo "$out"
    if [ $rc -eq 0 ]; then echo "PASS"; exit 0; fi
    if [ $rc -ne 124 ] && grep -Eq "$no_driver" <<<"$out"; then echo "SKIP: no CUDA driver, so NCCL cannot run"; exit 77; fi
    echo "FAIL: exit status $rc"; exit 1 ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo "$out"
echo "--- exit status $rc"
if [ $rc -eq 124 ]; then echo "FAIL: still running after the bound (a hang)"; exit 1; fi
if [ $rc -eq 0 ]; then echo "FAIL: exit status 0 for a failure"; exit 1; fi
# A single process must fail cleanly; mpirun passes a killed rank's signal on.
if [ $rc -gt 128 ] && [ -z "$mpiexec" ]; then echo "FAIL: killed by signal $((rc - 128))"; exit 1; fi
if ! grep -Eq "$expect" <<<"$out"; then echo "FAIL: no message matching /$expect/"; exit 1; fi
echo "PASS"
