"""Ship a trained checkpoint as the package's reference model: float16 weights + its SHA-256.

    python -m experiments.export_reference CKPT [CKPT ...] [--image-size 192] [--decode D] [--input I]

Writes colorization/weights/reference.pt (hyper-parameters, the state dict in float16, the training size; loads
with torch.load(weights_only=True)) and records its SHA-256 in colorization/weights/__init__.py. Several
checkpoints of one recipe, fine-tuned from one start, are averaged weight by weight (a "model soup", Wortsman et
al. 2022): version 5 is two such runs averaged (experiments/results/reference_model.md).
"""

import argparse
import hashlib
import os
import re

import torch

from colorization import weights
from colorization.system import load_system
from colorization.transforms.encoding import INPUTS


def averaged_system(paths: list[str]):
    """The system of the first checkpoint with the floating-point weights of all averaged (integer buffers: the
    first's); ValueError naming a checkpoint of another recipe."""
    systems = [load_system(path) for path in paths]
    for path, system in zip(paths[1:], systems[1:]):
        if dict(system.hparams) != dict(systems[0].hparams):
            raise ValueError(f"{path}: another recipe than {paths[0]}'s; only one recipe's weights average")
    states = [system.state_dict() for system in systems]
    systems[0].load_state_dict({k: sum(state[k] for state in states) / len(states) if v.is_floating_point() else v
                                for k, v in states[0].items()})
    return systems[0]


def main():
    parser = argparse.ArgumentParser(prog="python -m experiments.export_reference", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", metavar="checkpoint",
                        help="a checkpoint written by train.py or experiments.train_reference; several of one recipe "
                        "are averaged")
    parser.add_argument("--image-size", type=int, default=192,
                        help="the size colorize and the app run it at (192: as good as 256 on whole photos, faster)")
    parser.add_argument("--decode", choices=["annealed_mean", "expectation", "argmax"],
                        help="the decoding the shipped model uses (default: the checkpoint's)")
    parser.add_argument("--input", choices=[name for name, n in INPUTS.items() if n == INPUTS["edge"]],
                        help="the input encoding the shipped model uses (default: the checkpoint's): version 7 is "
                        "version 6, trained on input=edge, given input=levin's better fill in the same channels")
    parser.add_argument("--out", help="write the float16 file here instead of shipping it (no checksum recorded)")
    args = parser.parse_args()

    try:
        system = averaged_system(args.checkpoints)
    except ValueError as error:  # CheckpointError too: one line naming the file
        parser.exit(2, f"error: {error}\n")
    if args.decode:
        system.hparams.decode = args.decode
    if args.input:
        if INPUTS[args.input] != INPUTS[system.hparams.input_encoding]:
            parser.exit(2, f"error: --input {args.input}: the network takes input={system.hparams.input_encoding}'s "
                        f"{INPUTS[system.hparams.input_encoding]} channels\n")
        system.hparams.input_encoding = args.input
    state = {k: v.half() if v.is_floating_point() else v for k, v in system.state_dict().items()}
    payload = {"hyper_parameters": dict(system.hparams), "state_dict": state,
               "datamodule_hyper_parameters": {"image_size": args.image_size}}
    folder = os.path.dirname(weights.__file__)
    path = args.out or os.path.join(folder, weights.REFERENCE_FILE)
    torch.save(payload, path)
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")
    if args.out:
        return
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    module = os.path.join(folder, "__init__.py")
    with open(module) as f:
        source = re.sub(r'REFERENCE_SHA256 = "[^"]*"', f'REFERENCE_SHA256 = "{digest}"', f.read())
    with open(module, "w") as f:
        f.write(source)
    print(f"sha256 {digest} recorded in {module}")


if __name__ == "__main__":
    main()
