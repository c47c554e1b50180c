"""Bring-your-own models end to end: torchvision ResNet-18 and ViT-B/16 weights files and local
Hugging Face folders (BERT, DistilBERT, RoBERTa encoders; a ViT image classifier), all written
here with random weights, through finetune -> export -> quantize -> predict."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import onnx
import openvino as ov
import pytest
import torch
import torchvision
from rich.console import Console
from safetensors.torch import save_file

from edgeft.bundle import Bundle
from edgeft.bundle.acceptance import load_acceptance_set
from edgeft.errors import EdgeftError
from edgeft.export import export_bundle
from edgeft.export.onnx_export import export_onnx
from edgeft.quantize import QuantizationScheme, QuantizeConfig, quantize_bundle
from edgeft.quantize.backends.onnxruntime_backend import OnnxRuntimeQuantizer
from edgeft.runtime import Predictor
from edgeft.runtime.scoring import encode_items
from edgeft.runtime.validation import validate_bundle
from edgeft.train import Recipe, finetune
from edgeft.train.run_folder import RUN
from edgeft.zoo import get_model
from edgeft.zoo.layer_groups import architecture_groups, family_of
from tests.conftest import write_parts

# The tiny test models run slower in int8 than in fp32 (fixed costs per operator outweigh the
# arithmetic), so these tests ship int8 anyway; test_budget_search.py tests the speed rule.

QUIET = Console(quiet=True)
# Random weights carry no accuracy to keep: the budget is wide, the plumbing is what is tested.
LOOSE = QuantizeConfig(
    allow_slower_int8=True, calibration="16", method="minmax", max_accuracy_drop=60.0
)


def torchvision_weights(arch: str, path: Path) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tokenizer_file(path: Path, words: list[str]) -> Path:
    """A WordPiece tokenizer over ``words`` with BERT's special tokens, as tokenizer.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *sorted(set(words))])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.save(str(path))
    return path


def encoder_folder(root: Path, model_type: str, texts: Path) -> Path:
    """A two-layer ``model_type`` encoder, 32 wide, with a tokenizer over the tickets' words."""
    from transformers import AutoConfig, AutoModel

    words = " ".join(texts.read_text().lower().split("\n")[1:]).replace(",", " ").split()
    root.mkdir(parents=True)
    tokenizer_file(root / "tokenizer.json", words)
    sizes = {
        "distilbert": {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2},
    }.get(
        model_type,
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
    )
    config = AutoConfig.for_model(
        model_type, vocab_size=len(set(words)) + 4, pad_token_id=0, max_position_embeddings=66
    )
    for key, value in sizes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(str(root))
    return root


def vit_folder(root: Path) -> Path:
    """A two-layer ViT image classifier on 32x32 inputs, with its preprocessor config."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_labels=5,
    )
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(str(root))
    preprocessor = {
        "do_resize": True,
        "size": {"height": 32, "width": 32},
        "resample": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (root / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return root


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parts(tmp_path_factory.mktemp("byo") / "parts", 24, seed=7)


def _through_the_pipeline(
    recipe: Recipe, root: Path, config: QuantizeConfig = LOOSE
) -> tuple[dict, Bundle]:
    """finetune -> export -> quantize (both engines) -> validate on this host."""
    finetune(recipe, root / "run", console=QUIET)
    run = json.loads((root / "run" / RUN).read_text())
    bundle = export_bundle(root / "run", root / "bundle", acceptance_size=8)
    int8 = quantize_bundle(bundle.root, root / "int8", config, console=QUIET)
    assert int8.manifest.labels == bundle.manifest.labels == run["labels"]
    report = validate_bundle(int8)  # on this host, against the acceptance set
    assert {m.precision for m in report.models} == {"fp32", "int8"}
    assert report.passed, report.failures()
    return run, int8


def _dequantized_inputs(graph: onnx.GraphProto, op_types: set[str]) -> list[str]:
    """The ``op_types`` nodes that read a DequantizeLinear output."""
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.op_type for n in graph.node if n.op_type in op_types and dequantized & set(n.input)]


def _rounded_float_inputs(graph: onnx.GraphProto, op_types: set[str]) -> list[str]:
    """The ``op_types`` nodes that read an 8-bit rounding of a float tensor,
    DequantizeLinear(QuantizeLinear(x)). An embedding lookup's rows are int8 in the file, so
    rounding them again (x made by a Gather) loses nothing and is left out."""
    producer = {o: n for n in graph.node for o in n.output}

    def rounds_float(name: str) -> bool:
        dequantize = producer.get(name)
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            return False
        quantize = producer.get(dequantize.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear":
            return False
        source = producer.get(quantize.input[0])
        return source is None or source.op_type != "Gather"

    return [
        n.op_type for n in graph.node if n.op_type in op_types and any(map(rounds_float, n.input))
    ]


def _fake_quantized_inputs(model: ov.Model, op_types: set[str]) -> list[str]:
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in op_types:
            sources = [i.get_source_output().get_node().get_type_name() for i in op.inputs()]
            found += [op.get_type_name()] if "FakeQuantize" in sources else []
    return found


def _onnxruntime_graphs(
    int8: Bundle, root: Path, pinned: tuple[str, ...] = ("dynamic", "minmax")
) -> dict[str, onnx.GraphProto]:
    """The ONNX Runtime int8 graph the budget loop shipped, and the ``pinned`` settings' graphs
    made from ``root``'s fp32 bundle with the setting fixed: which transformer branch ships
    (dynamic or static QDQ) depends on this host's timing, and the scheme on its CPU, so the
    pinned ones take the scheme this host would not."""
    entry = int8.manifest.model("onnxruntime", "int8")
    assert entry.details["model_type"] == "transformer"
    graphs = {entry.details["setting"]: onnx.load(str(int8.path_of(entry))).graph}
    if not pinned:
        return graphs
    fp32 = Bundle.load(root / "bundle")
    accepted = load_acceptance_set(fp32.root, fp32.manifest)
    assert accepted is not None
    other = QuantizationScheme(reduce_range=not QuantizationScheme.for_host().reduce_range)
    work = root / "pinned"
    work.mkdir()
    quantizer = OnnxRuntimeQuantizer(
        fp32.path_of(fp32.manifest.model("onnxruntime", "fp32")),
        encode_items(fp32, accepted.inputs(fp32.root)),
        other,
        work,
        model_type="transformer",
    )
    for setting in pinned:
        quantizer.quantize(setting, work / f"{setting}.onnx")
        graphs[f"{setting} {other.key}"] = onnx.load(str(work / f"{setting}.onnx")).graph
    return graphs


def _keeps_transformer_settings(int8: Bundle, graphs: dict[str, onnx.GraphProto]) -> None:
    """Both engines' int8 models run the matrix products in int8 and leave softmax, norms,
    residual sums and the patch convolution in float, reading float tensors: ONNX Runtime's
    static QDQ (any calibration setting) and dynamic models alike."""
    float_ops = {"Softmax", "LayerNormalization", "Add", "Conv"}
    for setting, graph in graphs.items():
        if setting.startswith("dynamic"):
            # weights int8 in the file, activations quantized per call
            assert "MatMulInteger" in {n.op_type for n in graph.node}
        else:
            assert _dequantized_inputs(graph, {"MatMul"}), setting
        assert _rounded_float_inputs(graph, float_ops) == [], setting
    ir = ov.Core().read_model(int8.path_of(int8.manifest.model("openvino", "int8")))
    assert int8.manifest.model("openvino", "int8").details["model_type"] == "transformer"
    assert _fake_quantized_inputs(ir, {"MatMul"})
    assert _fake_quantized_inputs(ir, {"Softmax", "SoftMax", "MVN"}) == []


def _predicts_images(bundle: Bundle, images: list[Path]) -> None:
    for engine in ("onnxruntime", "openvino"):
        predictions = Predictor(bundle, engine=engine, precision="int8").predict(images)
        assert [p.label in bundle.manifest.labels for p in predictions] == [True] * len(images)
        assert all(0 < p.confidence <= 1 and len(p.top_k) >= 1 for p in predictions)


@pytest.mark.parametrize(
    ("arch", "image_size", "strategy", "head", "family"),
    [
        ("resnet18", 64, "full", "fc", "cnn"),
        # ViT-B/16 at its fixed 224 px; feature extraction keeps the 86 M-parameter trunk's
        # training cheap, export and int8 still go through all of it.
        ("vit_b_16", 224, "feature-extraction", "heads", "transformer"),
    ],
)
def test_torchvision_weights_file_end_to_end(
    arch: str, image_size: int, strategy: str, head: str, family: str, parts: Path, tmp_path: Path
) -> None:
    weights = torchvision_weights(arch, tmp_path / f"{arch}.safetensors")
    recipe = Recipe(
        model=f"torchvision:{arch}",
        weights=str(weights),
        data=str(parts),
        strategy=strategy,
        epochs=1,
        batch_size=16,
        image_size=image_size,
        precision="fp32",
    )
    run, int8 = _through_the_pipeline(recipe, tmp_path)
    record = run["architecture"]
    assert record["source"] == "torchvision" and record["arch"] == arch
    assert record["head"] == head and record["family"] == family
    assert len(record["weights_sha256"]) == 64
    if family == "cnn":
        entry = int8.manifest.model("onnxruntime", "int8")
        assert entry.details["model_type"] == "cnn"
        assert _dequantized_inputs(onnx.load(str(int8.path_of(entry))).graph, {"Conv"})
    else:
        # the 86 M-parameter trunk is quantized once; the tiny ViT below pins both settings
        _keeps_transformer_settings(int8, _onnxruntime_graphs(int8, tmp_path, pinned=()))
    _predicts_images(int8, sorted((parts / "dent").iterdir())[:3])


def test_torchvision_vision_transformer_exports_like_torch(tmp_path: Path) -> None:
    """torchvision's ViT attention takes a fused path in eval mode that ONNX cannot express;
    the export traces the plain one and must still match torch."""
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    example = {"input": torch.randn(2, 3, 32, 32)}
    deviation = export_onnx(model, example, ["logits"], tmp_path / "vit.onnx", {})
    assert deviation < 1e-4
    assert torch.backends.mha.get_fastpath_enabled()  # the global switch is put back


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
def test_local_encoder_folders_end_to_end(model_type: str, tickets: Path, tmp_path: Path) -> None:
    folder = encoder_folder(tmp_path / model_type, model_type, tickets)
    recipe = Recipe(model=str(folder), data=str(tickets), epochs=2, batch_size=16, precision="fp32")
    # every setting: ONNX Runtime tries dynamic int8 first for a transformer (optimum's choice)
    run, int8 = _through_the_pipeline(recipe, tmp_path, replace(LOOSE, method="auto"))
    record = run["architecture"]
    assert record["source"] == "huggingface" and record["model_type"] == model_type
    assert record["family"] == "transformer"
    attempts = int8.manifest.model("onnxruntime", "int8").details["attempts"]
    assert attempts[0]["setting"] == "dynamic" and attempts[0]["error"] is None
    _keeps_transformer_settings(int8, _onnxruntime_graphs(int8, tmp_path))
    assert (tmp_path / "run" / "config.json").is_file()  # export rebuilds from the run alone
    assert int8.manifest.model("openvino", "int8").details["model_type"] == "transformer"
    for engine in ("onnxruntime", "openvino"):
        predictions = Predictor(int8, engine=engine, precision="int8").predict(
            ["invoice 12 charges us twice", "the old press keeps jamming"]
        )
        assert {p.label for p in predictions} <= {"billing", "machine"}


def test_local_vit_image_classifier_folder_end_to_end(parts: Path, tmp_path: Path) -> None:
    folder = vit_folder(tmp_path / "vit-tiny")
    entry = get_model(str(folder))
    assert entry.task == "image-classification"
    assert entry.preprocessing.crop == (32, 32) and entry.preprocessing.mean == (0.5, 0.5, 0.5)
    recipe = Recipe(model=str(folder), data=str(parts), epochs=1, batch_size=16, precision="fp32")
    run, int8 = _through_the_pipeline(recipe, tmp_path)
    assert run["architecture"]["family"] == "transformer"
    assert run["preprocessing"]["crop"] == [32, 32]
    _keeps_transformer_settings(int8, _onnxruntime_graphs(int8, tmp_path))
    _predicts_images(int8, sorted((parts / "dent").iterdir())[:2])


@pytest.mark.parametrize(
    ("arch", "stem", "blocks", "head"),
    [
        ("resnet18", "conv1", 0, "fc"),
        ("resnet50", "conv1", 0, "fc"),
        ("efficientnet_b0", "features.0", 0, "classifier"),
        ("mobilenet_v3_large", "features.0", 0, "classifier"),
        ("convnext_tiny", "features.0", 0, "classifier"),
        ("vit_b_16", "stem", 12, "heads"),
    ],
)
def test_layer_groups_come_from_the_architecture(
    arch: str, stem: str, blocks: int, head: str
) -> None:
    model = torchvision.models.get_model(arch, weights=None)
    groups = architecture_groups(model)
    grouped = [p for g in groups for p in g.parameters()]
    assert len({id(p) for p in grouped}) == len(grouped) == len(list(model.parameters()))
    assert groups[0].name == stem and groups[-1].name == head
    assert sum("encoder_layer" in g.name for g in groups) == blocks
    assert family_of(model) == ("transformer" if blocks else "cnn")


def test_weights_that_fit_another_model_are_refused_before_training(
    parts: Path, tmp_path: Path
) -> None:
    weights = torchvision_weights("resnet18", tmp_path / "r18.safetensors")
    torch.manual_seed(0)
    wide = torchvision.models.resnet18(num_classes=10).state_dict()
    save_file({k: v.contiguous() for k, v in wide.items()}, str(tmp_path / "r18-10.safetensors"))
    cases = [
        ("torchvision:resnet34", weights, "missing ['layer1.2.conv1.weight'"),
        ("torchvision:resnet18", tmp_path / "r18-10.safetensors", "fc.weight (10, 512)"),
    ]
    for index, (model, file, message) in enumerate(cases):
        out = tmp_path / f"run-{index}"
        recipe = Recipe(model=model, weights=str(file), data=str(parts), epochs=1)
        with pytest.raises(EdgeftError, match=re.escape(message)):
            finetune(recipe, out, console=QUIET)
        assert not out.exists()  # refused before a run folder was made


def test_broken_hugging_face_folders_are_refused_before_training(
    tickets: Path, tmp_path: Path
) -> None:
    folder = encoder_folder(tmp_path / "bert", "bert", tickets)
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((folder / name).read_bytes())
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    (no_config / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    wrong_shapes = tmp_path / "wrong-shapes"
    wrong_shapes.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (wrong_shapes / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text()) | {"hidden_size": 48}
    (wrong_shapes / "config.json").write_text(json.dumps(config))
    cases = [
        (no_tokenizer, "no tokenizer.json"),
        (no_config, "not a Hugging Face model folder"),
        (wrong_shapes, "transformers cannot load it"),
    ]
    for source, message in cases:
        out = tmp_path / f"run-{source.name}"
        with pytest.raises(EdgeftError, match=message):
            finetune(Recipe(model=str(source), data=str(tickets)), out, console=QUIET)
        assert not out.exists()
