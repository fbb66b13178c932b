"""Faults injected into the data side of real processes: `+callbacks.fault=...` on train.py's command line (the
callback is built before `prepare_data`, so its constructor arms the fault), or `python -m tests.faults_data`."""

import json
import os
import signal
import sys
import time

import lightning as L

from colorization.data import catalogue


class KillDatabaseAfterFirstChunk(L.Callback):
    """SIGKILL the MongoDB process `database_pid` once the catalogue has stored its first `chunk` photos: the
    database dies in the middle of a catalogue build."""

    def __init__(self, database_pid: int, chunk: int = 4):
        catalogue._Catalogue.CHUNK = chunk
        add = catalogue._Catalogue._add

        def add_then_kill(self, *args, **kwargs):
            add(self, *args, **kwargs)
            os.kill(database_pid, signal.SIGKILL)

        catalogue._Catalogue._add = add_then_kill


def kill_after_first_split_tagged():
    """SIGKILL this process right after the catalogue tagged its first split."""
    view_class = catalogue.fo.core.view.DatasetView
    tag = view_class.tag_samples

    def tag_then_kill(self, tags):
        tag(self, tags)
        os.kill(os.getpid(), signal.SIGKILL)

    view_class.tag_samples = tag_then_kill


def prepare(folder: str, cache_dir: str, start_file: str | None = None) -> dict:
    """What a training run does with the data before its first step (prepare_data, setup); once `start_file`
    exists, so that several processes can be started together. Returns the split sizes."""
    from colorization.data import ColorizationDataModule
    from colorization.transforms import PaperHints

    if start_file:
        open(f"{start_file}.ready-{os.getpid()}", "w").close()
        while not os.path.exists(start_file):
            time.sleep(0.01)
    dm = ColorizationDataModule(source="images", dir=folder, image_size=16, batch_size=4, num_workers=0,
                                hints=PaperHints(), cache_dir=cache_dir)
    dm.prepare_data()
    dm.setup("fit")
    return {split: len(paths) for split, paths in dm.files.items()}


if __name__ == "__main__":  # python -m tests.faults_data FOLDER CACHE_DIR [START_FILE] [--kill-after-first-tag]
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--kill-after-first-tag" in sys.argv:
        kill_after_first_split_tagged()
    print("splits " + json.dumps(prepare(*args)), flush=True)
