"""Test set-up: a private FiftyOne database, W&B switched off, a private cache; Hydra composition helpers."""

import atexit
import os
import pathlib
import shutil
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TMP = pathlib.Path(tempfile.mkdtemp(prefix="colorization-tests-"))
# Registered before FiftyOne is imported, so it runs after FiftyOne's own exit handlers (which use the database);
# its MongoDB files are ~300 MB a session.
atexit.register(shutil.rmtree, TMP, ignore_errors=True)
# Before FiftyOne or W&B are imported anywhere: they read these once.
os.environ.update({
    "FIFTYONE_DATABASE_DIR": str(TMP / "fiftyone-db"),
    "FIFTYONE_DATABASE_VALIDATION": "false",
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_DATASET_ZOO_DIR": str(TMP / "fiftyone-zoo"),
    "WANDB_MODE": "disabled",
    "WANDB_SILENT": "true",
    "COLORIZATION_CACHE": str(TMP / "cache"),
    # One BLAS/OpenMP thread per process: tests start worker and DDP processes on 2 cores, and
    # oversubscribed OpenMP threads spin-wait each other (measured here: 10x slower steps).
    "OMP_NUM_THREADS": "1",
})

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from colorization.hydra_utils import register_resolvers  # noqa: E402

register_resolvers()

# Small and fast: the embedded photos at 64 px, the paper code's tiny widths, CSV logs, CPU.
FAST = [
    "data=sample", "data.image_size=64", "data.batch_size=4", "data.num_workers=0",
    "model.widths=[8,16,32,64]", "logger=csv", "trainer.max_epochs=1", "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]


def compose_train(output_dir, *overrides):
    """conf/train.yaml composed as train.py would, writing into output_dir."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[*FAST, f"paths.output_dir={output_dir}", *overrides])


@pytest.fixture
def shared_data() -> pathlib.Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not found at {SHARED_DATA} (only on development machines and CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A small ResUNet trained briefly on the embedded photos at 64 px (for inference tests). Large point
    hints and a heavy hint term teach it to follow hints within a few dozen steps."""
    from train import train

    out = tmp_path_factory.mktemp("tiny-run")
    cfg = compose_train(out, "trainer.max_epochs=30", "test=false", "optimizer.lr=0.003", "hints=points",
                        "loss.lambda_patch=10", "trainer.num_sanity_val_steps=0")
    result = train(cfg)
    return result["best_checkpoint"]
