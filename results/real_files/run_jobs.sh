# The real-file corpus through compress, decompress (WebDataset and --format png) and audit, default flags and
# --lossless (issue 23): bash results/real_files/run_jobs.sh [WORK_DIR]; then python results/real_files/table.py WORK_DIR
set -x
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
J=${1:-/tmp/real-files-job}
python -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from real_corpus import samples; from shardkit import write_shard; write_shard(Path('$J/corpus/real-000000.tar'), samples())"
python jobs/compress.py --input $J/corpus --output $J/arc --actors 1 --no-progress; echo rc=$?
python jobs/decompress.py --input $J/arc --output $J/wds --actors 1 --no-progress; echo rc=$?
python jobs/decompress.py --input $J/arc --output $J/png --format png --actors 1 --no-progress; echo rc=$?
python jobs/audit.py $J/corpus --input $J/arc --output $J/audit --actors 1 --no-progress; echo rc=$?
python jobs/compress.py --input $J/corpus --output $J/ll-arc --lossless --actors 1 --no-progress; echo rc=$?
python jobs/decompress.py --input $J/ll-arc --output $J/ll-wds --actors 1 --no-progress; echo rc=$?
python jobs/decompress.py --input $J/ll-arc --output $J/ll-png --format png --actors 1 --no-progress; echo rc=$?
python jobs/audit.py $J/corpus --input $J/ll-arc --output $J/ll-audit --actors 1 --no-progress; echo rc=$?
