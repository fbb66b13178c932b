"""python evaluate.py ckpt_path=CKPT data=images data.dir=DIR [max_images=20] [fiftyone=true] -- conf/eval.yaml.

Composes the pieces of colorization.evaluation: photos from the data module's file lists, the checkpoint,
then report.json, per_image.csv, summary.md, psnr_vs_points.png and best_worst.png in the Hydra output dir.
"""

import os
import sys

import hydra
import torch
from omegaconf import DictConfig

from colorization import evaluation
from colorization.checkpoint import CheckpointError
from colorization.checks import ConfigError
from colorization.hydra_utils import register_resolvers
from colorization.inference import load_model

register_resolvers()


def photo_paths(cfg: DictConfig, image_size: int, n_bins: int, ab_range) -> tuple[str, list[str]]:
    """The split's photos, from the same catalogue (gray filter, seeded split) that training uses."""
    split = cfg.split or ("all" if cfg.data.source == "images" else "test")
    datamodule = hydra.utils.instantiate(cfg.data, hints=None, image_size=image_size, n_bins=n_bins,
                                         ab_range=list(ab_range), _convert_="all")
    datamodule.resolve_files()  # the file lists only: no resize caches, no bin counts, no other split decoded
    if split not in datamodule.files:
        raise evaluation.EvaluationError(f"split={split!r}: expected one of {', '.join(datamodule.files)}")
    paths = datamodule.files[split][: cfg.max_images]
    if not paths:
        raise evaluation.EvaluationError(f"split={split!r} of data.source={cfg.data.source} holds no colour photos")
    return split, paths


def run(cfg: DictConfig) -> str:
    out_dir = cfg.paths.output_dir
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    # ckpt_path null: the reference model
    model = load_model(cfg.ckpt_path, device) if "model" in cfg.methods else None
    if model:
        model.decode, model.temperature = evaluation.check_decode(
            cfg.decode or model.decode, model.temperature if cfg.temperature is None else cfg.temperature)
    image_size = cfg.image_size or (model and model.image_size) or 256
    evaluation.check_options(cfg.methods, cfg.settings, image_size)
    n_bins, ab_range = (model.n_bins, model.ab_range) if model else (cfg.bins.n, cfg.bins.range)
    split, paths = photo_paths(cfg, image_size, n_bins, ab_range)

    if cfg.resize not in ("stretch", "crop"):
        raise evaluation.EvaluationError(f"resize={cfg.resize!r}: expected stretch or crop")
    options = dict(image_size=image_size, resize=cfg.resize, seed=cfg.seed, batch_size=cfg.batch_size,
                   num_workers=cfg.data.num_workers, device=device)
    save_dir = os.path.join(out_dir, "predictions") if cfg.fiftyone else None
    rows = evaluation.evaluate(model, list(cfg.methods), list(cfg.settings), paths, save_dir, **options)
    about = {"checkpoint": cfg.ckpt_path or "reference", "data": f"{cfg.data.source} {cfg.data.dir or ''}".strip(),
             "split": split,
             "image size": f"{image_size} px ({cfg.resize})", "hint seed": cfg.seed, "device": device}
    if model:
        about["decode"] = model.decode + (f", T = {model.temperature}" if model.decode == "annealed_mean" else "")
    evaluation.write_report(rows, out_dir, about)
    method = cfg.best_worst.method or ("model" if model else cfg.methods[0])
    evaluation.best_worst(model, rows, paths, os.path.join(out_dir, "best_worst.png"), method,
                          cfg.best_worst.setting, cfg.best_worst.k, **options)
    print(open(os.path.join(out_dir, "summary.md")).read())
    if cfg.fiftyone:
        name = cfg.fiftyone_name or f"colorization-eval-{os.path.basename(os.path.normpath(out_dir))}"
        evaluation.to_fiftyone(rows, name)
        print(f"FiftyOne dataset {name}: `fiftyone app launch {name}` (saved view model-worst-psnr), or\n"
              f"  python -c \"import fiftyone as fo; fo.launch_app(fo.load_dataset('{name}')).wait()\"")
    print(f"evaluation written to {out_dir}")
    return out_dir


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (CheckpointError, ConfigError, evaluation.EvaluationError, FileNotFoundError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
