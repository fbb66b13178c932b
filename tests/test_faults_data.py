"""Faults on the data side (issue 16, rows 2-8): damaged cache files, photos changed under a catalogue, two runs
at once, a run killed while tagging, the database killed mid-run. Real files, real processes, a real FiftyOne
database; tiny generated photos."""

import json
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.data import ColorizationDataModule, catalogue
from colorization.data.decode import CachedImages, decode_image
from colorization.transforms import PaperHints

ROOT = pathlib.Path(__file__).resolve().parents[1]

VIVID, GRAY = 10, 2  # photos per folder: random colours (pass the gray filter), and uniform gray ones


def write_photo(path, gray=False, seed=0, size=32):
    rng = np.random.default_rng(seed)
    rgb = np.full((size, size, 3), 128, np.uint8) if gray else rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def write_folder(folder, broken=False):
    folder.mkdir()
    for i in range(VIVID):
        write_photo(folder / f"p{i:02d}.png", seed=i)
    for i in range(GRAY):
        write_photo(folder / f"gray{i}.png", gray=True)
    if broken:
        (folder / "broken.png").write_bytes(b"not a photo")
    return folder


def datamodule(folder, cache_dir, **settings):
    """A training run's data (prepare_data, then setup, as Lightning calls them)."""
    dm = ColorizationDataModule(source="images", dir=str(folder), image_size=16, batch_size=4, num_workers=0,
                                hints=PaperHints(), cache_dir=str(cache_dir), **settings)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def assert_rows_are_the_photos(dm):
    """Every training row the loader hands out equals the photo decoded now (no stale or damaged row)."""
    dataset = dm.train_dataloader().dataset
    assert isinstance(dataset, CachedImages)
    paths = dm.files["train"]
    assert len(dataset) == len(paths)
    for index, path in enumerate(paths):
        assert torch.equal(dataset[index]["rgb"], decode_image(path, 16)), path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One folder for the cache tests: its catalogue is built once, each test has its own cache."""
    return write_folder(tmp_path_factory.mktemp("cache-faults") / "photos")


def train_cache(cache_dir) -> str:
    """The train split's resize cache (the largest: 8 of 10 photos)."""
    return max((str(p) for p in cache_dir.glob("resized-*.npy")), key=os.path.getsize)


# -- rows 2, 3, 4: damaged cache files are detected and rebuilt -------------------------------------------------
def test_a_truncated_resize_cache_is_rebuilt(folder, tmp_path, caplog):
    datamodule(folder, tmp_path)
    npy = train_cache(tmp_path)
    with open(npy, "r+b") as f:
        f.truncate(os.path.getsize(npy) // 2)
    with caplog.at_level(logging.INFO):
        dm = datamodule(folder, tmp_path)
    assert f"resize cache {npy}: its rows file has" in messages(caplog) and "rebuilding it" in messages(caplog)
    assert_rows_are_the_photos(dm)


def test_a_killed_cache_build_leaves_nothing_once_the_cache_is_built_again(folder, tmp_path):
    """Issue 16 row 13: SIGKILL mid-build leaves the half-written rows under a temporary name; the next build of
    that cache removes it."""
    datamodule(folder, tmp_path)
    npy = train_cache(tmp_path)
    leftover = os.path.join(os.path.dirname(npy), f".{os.path.basename(npy)}.999999999.abcd.part")
    os.replace(npy, leftover)  # as a build killed before its rename leaves it
    datamodule(folder, tmp_path)
    assert os.path.exists(npy) and not list(tmp_path.glob(".*.part"))


def test_a_resize_cache_overwritten_in_the_middle_is_rebuilt(folder, tmp_path, caplog):
    datamodule(folder, tmp_path)
    npy = train_cache(tmp_path)
    with open(npy, "r+b") as f:  # one photo's worth of white, same length: only a checksum sees it
        f.seek(os.path.getsize(npy) // 2)
        f.write(b"\xff" * 768)
    with caplog.at_level(logging.INFO):
        dm = datamodule(folder, tmp_path)
    assert "fails its checksum" in messages(caplog)
    assert_rows_are_the_photos(dm)


def test_damaged_bin_counts_and_an_empty_cache_index_are_recomputed(folder, tmp_path, caplog):
    first = datamodule(folder, tmp_path)
    counts = first.bin_counts()
    [pt] = tmp_path.glob("bin-counts-*.pt")
    pt.write_bytes(pt.read_bytes()[:100])
    index = train_cache(tmp_path)[: -len(".npy")] + ".json"
    open(index, "w").close()
    with caplog.at_level(logging.INFO):
        dm = datamodule(folder, tmp_path)
    assert f"{pt}: unreadable or damaged; recomputing it" in messages(caplog)
    assert "its index file is unreadable" in messages(caplog)
    assert torch.equal(torch.load(pt, weights_only=True), counts) and torch.equal(dm.bin_counts(), counts)
    assert_rows_are_the_photos(dm)
    assert not list(tmp_path.glob(".*.part"))  # written aside and renamed: nothing half-written left


# -- row 5: the catalogue follows its folder ----------------------------------------------------------------
def stored(folder, name):
    dataset = catalogue.fo.load_dataset(catalogue.catalogue_name("images", str(folder), ("train2017", "val2017")))
    return dict(zip(dataset.values("filepath"), dataset.values(name)))


def test_the_catalogue_follows_photos_added_replaced_and_deleted(tmp_path, caplog):
    folder = write_folder(tmp_path / "photos")
    before = datamodule(folder, tmp_path / "cache")
    assert len(before.files["all"]) == VIVID
    counts_before = before.bin_counts()
    replaced, deleted, added = folder / "p03.png", folder / "p07.png", folder / "p99.png"
    write_photo(replaced, gray=True)  # a gray photo under a colour photo's name
    os.utime(replaced, ns=(1, 1))  # a time the old file cannot have had: the check is not left to the clock
    deleted.unlink()
    write_photo(added, seed=99)
    with caplog.at_level(logging.INFO):
        after = datamodule(folder, tmp_path / "cache")
    log = messages(caplog)
    assert "the photos changed on disk since the last run: 1 new, 1 changed, 1 gone" in log
    assert f"{VIVID + GRAY} photos, 0 undecodable, {GRAY + 1} near-gray filtered out" in log
    assert sorted(after.files["all"]) == sorted(str(p) for p in folder.glob("p*.png") if p != replaced)
    assert stored(folder, "gray_fraction")[str(replaced)] == 1.0  # measured again
    assert not after.bin_counts().equal(counts_before)  # the train split changed, and its counts with it
    assert_rows_are_the_photos(after)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        datamodule(folder, tmp_path / "cache")
    assert "changed on disk" not in messages(caplog)  # nothing changed since: nothing measured again


def test_a_photo_added_among_the_first_max_samples_is_imported(tmp_path):
    folder = write_folder(tmp_path / "photos")
    first = datamodule(folder, tmp_path / "cache", max_samples=4)
    assert [os.path.basename(p) for p in sorted(first.files["all"])] == ["p00.png", "p01.png", "p02.png", "p03.png"]
    write_photo(folder / "p015.png", seed=15)  # sorts between p01 and p02: the folder's first four change
    again = datamodule(folder, tmp_path / "cache", max_samples=4)
    assert [os.path.basename(p) for p in sorted(again.files["all"])] == ["p00.png", "p01.png", "p015.png", "p02.png"]


# -- row 6: two runs start at once on a new folder ---------------------------------------------------------
def start_together(folder, cache_dir, env, count=2, extra=()):
    """`count` processes preparing the data of `folder`, released at the same moment; their results."""
    go = cache_dir.parent / f"go-{time.monotonic_ns()}"
    processes = [subprocess.Popen([sys.executable, "-m", "tests.faults_data", str(folder), str(cache_dir), str(go),
                                   *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(count)]
    deadline = time.monotonic() + 120
    while len(list(go.parent.glob(f"{go.name}.ready-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)  # until each has imported torch, Lightning and FiftyOne and waits for the file
    go.touch()
    return [(p.wait(timeout=240), p.stdout.read()) for p in processes]


def assert_built_once(results, folder):
    assert all(rc == 0 for rc, _ in results), "\n---\n".join(out[-3000:] for _, out in results)
    assert sum("building from images" in out for _, out in results) == 1, [out[-2000:] for _, out in results]
    splits = [out.rsplit("splits ", 1)[1].strip() for _, out in results]
    assert splits[0] == splits[1] and json.loads(splits[0])["all"] == VIVID
    assert len(stored(folder, "filepath")) == VIVID + GRAY  # no photo twice


def environment(**changes):
    env = {**os.environ, **changes}
    return {k: v for k, v in env.items() if v is not None}


@pytest.mark.slow
def test_two_runs_at_once_on_a_new_folder_with_the_database_running(tmp_path):
    catalogue.fo.list_datasets()  # this process has started the tests' database: the runs find it running
    folder = write_folder(tmp_path / "photos")
    assert_built_once(start_together(folder, tmp_path / "cache", environment()), folder)


@pytest.mark.slow
def test_two_runs_at_once_on_a_new_folder_with_no_database_running(tmp_path):
    """Each process would start FiftyOne's MongoDB in the same folder; the one lock lets one start it."""
    folder = write_folder(tmp_path / "photos")
    env = environment(FIFTYONE_DATABASE_DIR=str(tmp_path / "db"), FIFTYONE_PRIVATE_DATABASE_PORT=None)
    results = start_together(folder, tmp_path / "cache", env)
    assert all(rc == 0 for rc, _ in results), "\n---\n".join(out[-3000:] for _, out in results)
    assert sum("building from images" in out for _, out in results) == 1, [out[-2000:] for _, out in results]


# -- row 7: killed right after the first split is tagged -------------------------------------------------------
@pytest.mark.slow
def test_a_run_killed_while_tagging_splits_leaves_nothing_wrong(tmp_path):
    folder = write_folder(tmp_path / "photos")
    command = [sys.executable, "-m", "tests.faults_data", str(folder), str(tmp_path / "cache")]
    killed = subprocess.run([*command, "--kill-after-first-tag"], cwd=ROOT, capture_output=True, text=True,
                            timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    tags = stored(folder, "tags")
    assert sum(bool(t) for t in tags.values()) < VIVID  # the kill left some photos untagged
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.rsplit("splits ", 1)[1]) == {"train": 8, "val": 1, "test": 1, "all": VIVID}
    tags = stored(folder, "tags")
    assert sorted(t for tag in tags.values() for t in tag) == ["test"] + ["train"] * 8 + ["val"]


# -- row 8: the database killed mid-run ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mongod(dbpath, port) -> subprocess.Popen:
    from fiftyone.core.service import DatabaseService

    dbpath.mkdir(exist_ok=True)
    mongod = subprocess.Popen([DatabaseService.find_mongod(), "--dbpath", str(dbpath), "--port", str(port),
                               "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", str(dbpath / "log")])
    for _ in range(300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return mongod
        time.sleep(0.05)
    mongod.kill()
    raise RuntimeError("mongod did not start")


@pytest.mark.slow
def test_the_database_killed_mid_run_is_one_line_and_the_next_run_counts_right(tmp_path):
    folder = write_folder(tmp_path / "photos", broken=True)
    port = free_port()
    env = environment(FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1000"
                                            "&connectTimeoutMS=1000",
                      FIFTYONE_PRIVATE_DATABASE_PORT=None)
    run = [sys.executable, "train.py", "debug=fast", "data=images", f"data.dir={folder}", "test=false",
           f"paths.cache_dir={tmp_path / 'cache'}"]
    mongod = start_mongod(tmp_path / "db", port)
    try:
        killed = subprocess.run([*run, f"hydra.run.dir={tmp_path / 'killed'}",
                                 "+callbacks.fault._target_=tests.faults_data.KillDatabaseAfterFirstChunk",
                                 f"+callbacks.fault.database_pid={mongod.pid}"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    finally:
        mongod.kill()
        mongod.wait()
    assert killed.returncode == 2, killed.stderr[-3000:]
    last = killed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach the FiftyOne database (it stopped answering while catalogue"), last
    assert "Traceback" not in killed.stderr, killed.stderr[-3000:]
    mongod = start_mongod(tmp_path / "db", port)
    try:
        again = subprocess.run([*run, f"hydra.run.dir={tmp_path / 'again'}"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=240)
    finally:
        mongod.kill()
        mongod.wait()
    assert again.returncode == 0, again.stderr[-3000:]
    assert (f"{VIVID + GRAY + 1} photos, 1 undecodable, {GRAY} near-gray filtered out (data.gray_filter=chroma, "
            "max_gray_fraction=0.7); train 8, val 1, test 1") in again.stdout + again.stderr, again.stdout[-3000:]
