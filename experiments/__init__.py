"""Benchmarks and tools around the package, run from the repository root as modules:

    python -m experiments.bench [SECTION]          the benchmarks (`make bench`: all sections -> BENCHMARKS.md)
    python -m experiments.load_app                 load test of the browser app
    python -m experiments.train_reference          train on photos held in memory (the reference model)
    python -m experiments.export_reference CKPT    ship a checkpoint as the package's reference model
    python -m experiments.plot_training_curves     curves of runs that continue one another
    bash experiments/reference_gpu.sh              the reference model and its ablations on one GPU

Each takes --help. results/ holds the write-ups of runs made with them.
"""
