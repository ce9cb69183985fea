"""Export: the file loads in the core (explicit path, $DEEPEXEMPLAR_WEIGHTS, the CLI), the manifest
records the backbone, the card is written, the push uses the environment's token only."""

from __future__ import annotations


import pytest
import torch

from training.export import export_run, push_to_hub
from training.train import TrainConfig, train


@pytest.fixture(scope="module")
def exported(pairs_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(TrainConfig(pairs=str(pairs_dir), out=str(run), steps=1, size=32, batch=2, workers=0,
                      progress=False, threads=1))
    out = tmp_path_factory.mktemp("export")
    weights = export_run(run, out, licence="apache-2.0")
    return run, weights


def test_exported_file_loads_in_the_core_and_records_the_backbone(exported, monkeypatch):
    from deepexemplar_core import load_models
    from deepexemplar_core.weights import read_manifest

    run, weights = exported
    models = load_models("lite", colorizer="paper", colornet_path=weights)
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    net = models.colorizer.net
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key].float() if value.is_floating_point() else state[key]), key
    manifest = read_manifest(weights)
    assert manifest["network"] == "ExampleColorNet" and manifest["trained_on_backbone"] == "lite"
    assert manifest["backbone_sha256"] == models.provenance["backbone_sha256"] != ""
    assert manifest["steps"] == 1 and manifest["licence"] == "apache-2.0"
    assert manifest["data"]["pairs"] == 8
    monkeypatch.setenv("DEEPEXEMPLAR_WEIGHTS", str(weights.parent))
    via_env = load_models("lite", colorizer="paper")
    assert via_env.provenance["colornet_sha256"] == manifest["sha256"]
    card = (weights.parent / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "backbone-lite" in card
    # the right backbone: no warning; another one: the reason, and the nodes refuse it
    assert "warning" not in models.provenance
    from deepexemplar_core.backbones import GrayVGG19BN
    from deepexemplar_core.models import IncompatibleModelsError, check_compatible

    assert "trained on the 'lite' backbone" in check_compatible(GrayVGG19BN(False), models.colorizer)
    with pytest.raises(IncompatibleModelsError, match="python -m training.train"):
        check_compatible(GrayVGG19BN(False), models.colorizer, strict=True)


def test_cli_colorizes_with_the_exported_file(exported, tmp_path):
    from PIL import Image
    from skimage import data

    from deepexemplar_core.cli import main

    _, weights = exported
    Image.fromarray(data.camera()).resize((96, 96)).save(tmp_path / "gray.png")
    Image.fromarray(data.coffee()).resize((96, 64)).save(tmp_path / "ref.png")
    code = main(["colorize", str(tmp_path / "gray.png"), "-r", str(tmp_path / "ref.png"),
                 "-o", str(tmp_path / "out.png"), "--family", "lite", "--colorizer", "paper",
                 "--colornet-weights", str(weights), "--size", "64", "--device", "cpu", "-q"])
    assert code == 0
    assert Image.open(tmp_path / "out.png").size == (96, 96)


def test_push_reads_the_token_from_the_environment_only(exported, monkeypatch):
    import huggingface_hub

    _, weights = exported
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id))

        def upload_folder(self, folder_path, repo_id, **kw):
            calls.append(("upload", sorted(p.name for p in weights.parent.iterdir())))
            return "https://huggingface.co/x/y/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(ValueError, match="HF_TOKEN"):
        push_to_hub(weights.parent, "x/y")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert push_to_hub(weights.parent, "x/y").endswith("/commit/1")
    assert calls[0] == ("init", "hf_secret") and calls[1] == ("create", "x/y")
    assert "example_net.safetensors" in calls[2][1] and "README.md" in calls[2][1]
    assert all("hf_secret" not in p.read_text(errors="ignore")
               for p in weights.parent.iterdir() if p.suffix in (".md", ".json"))


def test_evaluate_table_on_two_photos(exported, photo_dir, tmp_path):
    import shutil

    from training.evaluate import evaluate, format_table

    _, weights = exported
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(photo_dir / name, tmp_path / name)
    report = evaluate(weights, tmp_path, size=64)
    rows = report["rows"]
    assert len(report["photos"]) == 2 and len(rows) == 5
    # The warped reference of a self-reference carries most of the true colours: far above gray.
    assert rows["warped reference R'_ab"]["chrom_ab_psnr"] > rows["gray (ab = 0)"]["chrom_ab_psnr"] + 3
    assert rows["gray (ab = 0)"]["cross_colourfulness"] < 1.0
    table = format_table(report)
    assert table.count("\n| ") == 6 and "trained ExampleColorNet" in table
