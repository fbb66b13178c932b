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


def test_input_gives_the_same_weights_another_fill_of_the_same_channels(tiny_checkpoint, tmp_path, monkeypatch,
                                                                        capsys):
    """How version 7 was made: version 6's weights, trained on input=edge, given input=levin's fill in the same
    channels. A network that takes another number of channels is refused in one line."""
    edge = shifted_copy(tiny_checkpoint, tmp_path / "edge.ckpt", 0.0, input_encoding="edge")
    export(monkeypatch, edge, "--out", tmp_path / "levin.pt", "--input", "levin")
    before = torch.load(edge, map_location="cpu", weights_only=False)
    after = torch.load(tmp_path / "levin.pt", weights_only=True)
    assert (before["hyper_parameters"]["input_encoding"], after["hyper_parameters"]["input_encoding"]) == (
        "edge", "levin")
    assert all(torch.equal(value, before["state_dict"][key].half() if value.is_floating_point()
                           else before["state_dict"][key]) for key, value in after["state_dict"].items())

    fill = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)  # 6 input channels, not 7
    fill["hyper_parameters"] = {**fill["hyper_parameters"], "input_encoding": "fill"}
    fill["state_dict"] = {k: v[:, :6] if v.dim() == 4 and v.shape[1] == 7 else v for k, v in fill["state_dict"].items()}
    torch.save(fill, tmp_path / "fill.ckpt")
    with pytest.raises(SystemExit) as done:
        export(monkeypatch, tmp_path / "fill.ckpt", "--out", tmp_path / "fill.pt", "--input", "levin")
    error = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in error and "--input levin" in error and "6 channels" in error
    assert not (tmp_path / "fill.pt").exists()
