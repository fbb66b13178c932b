"""experiments/export_reference.py: one checkpoint exported as float16, several of one recipe averaged weight by
weight (how version 5 of the reference model was made), and another recipe refused in one line."""

import pytest
import torch

from experiments import export_reference


def shifted_copy(checkpoint: str, path, shift: float, **hparams) -> str:
    """The checkpoint with every floating-point weight plus `shift`, and some hyper-parameters changed."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["state_dict"] = {k: v + shift if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    state["hyper_parameters"] = {**state["hyper_parameters"], **hparams}
    torch.save(state, path)
    return str(path)


def export(monkeypatch, *args) -> None:
    monkeypatch.setattr("sys.argv", ["export_reference", *map(str, args)])
    export_reference.main()


def test_several_checkpoints_are_averaged_weight_by_weight(tiny_checkpoint, tmp_path, monkeypatch):
    plus_one = shifted_copy(tiny_checkpoint, tmp_path / "plus_one.ckpt", 1.0)
    export(monkeypatch, tiny_checkpoint, "--out", tmp_path / "one.pt")
    export(monkeypatch, tiny_checkpoint, plus_one, "--out", tmp_path / "soup.pt", "--image-size", 64)
    one, soup = (torch.load(tmp_path / name, weights_only=True) for name in ("one.pt", "soup.pt"))
    assert soup["datamodule_hyper_parameters"] == {"image_size": 64}
    floats = [k for k, v in one["state_dict"].items() if v.is_floating_point()]
    assert floats
    for key in floats:  # (w + (w + 1)) / 2 = w + 0.5, up to float16's rounding
        torch.testing.assert_close(soup["state_dict"][key].float(), one["state_dict"][key].float() + 0.5,
                                   atol=2e-3, rtol=2e-3)


def test_checkpoints_of_another_recipe_are_a_one_line_error(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    other = shifted_copy(tiny_checkpoint, tmp_path / "other.ckpt", 0.0, lambda_patch=3.0)
    with pytest.raises(SystemExit) as done:
        export(monkeypatch, tiny_checkpoint, other, "--out", tmp_path / "soup.pt")
    assert done.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "other.ckpt" in error and "recipe" in error
    assert not (tmp_path / "soup.pt").exists()
