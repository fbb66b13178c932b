"""Test set-up: a private FiftyOne database, W&B switched off, a private cache; the training config as a fixture."""

import atexit
import os
import pathlib
import shutil
import tempfile
from functools import partial

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


def compose_train(output_dir, *overrides):
    """conf/train.yaml composed as `python train.py debug=fast OVERRIDES` would (small and fast: conf/debug/fast.yaml),
    writing into output_dir."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=["debug=fast", f"paths.output_dir={output_dir}", *overrides])


@pytest.fixture(scope="session")
def compose_config():
    """compose_train for module- and session-scoped fixtures, which cannot use the per-test cfg_train."""
    return compose_train


@pytest.fixture
def cfg_train(tmp_path):
    """cfg_train(*overrides): the training config of `python train.py debug=fast OVERRIDES`, writing into this
    test's tmp_path (lightning-hydra-template's cfg_train, called with overrides since groups cannot be swapped
    after composition)."""
    return partial(compose_train, tmp_path)


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
