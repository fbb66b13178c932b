#!/bin/bash
# The reference model and the recipe ablations, side by side on one GPU (experiments/results/reference_model.md).
# Usage: bash experiments/reference_gpu.sh PHOTOS_DIR OUT_DIR MINUTES [INIT [OPTION ...]]
# reference: the default recipe at the default widths, 256 px crops (a3: the same recipe at the small scale). a1-a6: the same data at 128 px with widths
# [16,32,64,128], each changing the recipe in one way (a1 is the paper's settings). Each run keeps its best
# checkpoint on val/psnr; they come back as float16 exports (split to fit the device tool's 16 MiB a file).
# With INIT (`reference`: the shipped model, or a checkpoint) only the reference runs, fine-tuned from INIT with the
# whole GPU (256 px crops of photos loaded at 288, version 4's scale; lr 3e-4), its best checkpoint by val/psnr_10pts;
# OPTIONs after INIT go to experiments.train_reference (e.g. optimizer.lr=0.001 --batch-size 64). The runs are
# written under $WORK (default /tmp/reference-runs): two calls side by side need a WORK each.
set -u
usage() { sed -n '2,10p' "$0" | cut -c3-; }  # the comment above
case "${1-}" in -h|--help) usage; exit 0;; esac
if [ $# -lt 3 ]; then usage >&2; exit 2; fi
photos=$1 out=$2 minutes=$3 init=${4-}
shift $(( $# < 4 ? $# : 4 ))
# the experiments package importable wherever the script is started from
export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
work=${WORK:-/tmp/reference-runs}
mkdir -p "$work" "$out"
common="--photos $photos --minutes $minutes --val 48 --steps-per-epoch 200 trainer.precision=${PRECISION:-bf16-mixed}"
common="$common data.max_gray_fraction=0.95"
small="--size 128 --batch-size 32 model.widths=[16,32,64,128]"
# the logs and the reference's export into OUT, split to fit the device tool's 16 MiB a file
pack() { tar czf "$out/logs.tgz" -C "$work" --exclude='*.ckpt' --exclude='*.pt' . &&
  split -b 15M "$work/reference.pt" "$out/reference.pt.part-" && ls -la "$out"; }
run() { name=$1; shift; python3 -m experiments.train_reference --out "$work/$name" "$@" > "$work/$name.log" 2>&1; }
if [ -n "$init" ]; then
  run reference $common --size 256 --load-size 288 --batch-size 32 --init "$init" --monitor val/psnr_10pts \
    optimizer.lr=0.0003 decode=expectation "$@"
  status=$?
  tail -5 "$work/reference.log"
  python3 -m experiments.export_reference "$work/reference/checkpoints/best.ckpt" --out "$work/reference.pt" \
    --decode expectation || exit 1
  pack
  exit $status
fi
# Seven processes on 16 cores: with torch's default threads each, the first try never got past decoding the photos
# in 10 minutes (experiments/results/reference_model.md).
export OMP_NUM_THREADS=2
run reference $common --size 256 --batch-size 32 &
run a1_paper $common $small recipe=paper &
run a2_paper_input $common $small input=paper output=absolute &
run a3_recipe $common $small &
run a4_no_uniform_mix $common $small loss.uniform_mix=0 &
run a5_lr_1e-2 $common $small optimizer.lr=0.01 &
run a6_lambda_1 $common $small loss.lambda_patch=1 &
run a7_no_regression $common $small loss.regression=0 &
wait
for run in "$work"/*/; do
  name=$(basename "$run")
  python3 -m experiments.export_reference "$run/checkpoints/best.ckpt" --out "$work/$name.pt" \
    --image-size $([ "$name" = reference ] && echo 192 || echo 128)
done
tar cf - -C "$work" $(cd "$work" && ls a*.pt) | split -b 15M - "$out/ablations.tar.part-"
pack
