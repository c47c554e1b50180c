"""Export to a bundle, then predict with the torch-free runtime on both engines."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from edgeft.bundle import Bundle
from edgeft.data.transforms import eval_transform
from edgeft.errors import BundleError, EdgeftError
from edgeft.export import export_bundle
from edgeft.runtime import ImagePreprocessor, Predictor
from edgeft.zoo import get_model

CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture
def mobilenet_bundle(zoo_bundle: Bundle) -> Bundle:
    return zoo_bundle


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
@pytest.mark.parametrize(
    "image",
    [skimage_data.chelsea(), skimage_data.camera(), skimage_data.astronaut()[:300, :170]],
    ids=["landscape-rgb", "square-gray", "portrait-rgb"],
)
def test_numpy_preprocessing_matches_the_training_transform(name: str, image: np.ndarray) -> None:
    spec = get_model(name).preprocessing
    pil = Image.fromarray(image).convert("RGB")
    expected = eval_transform(spec)(pil).numpy()
    actual = ImagePreprocessor(spec)(image)
    assert actual.shape == expected.shape == (3, *spec.crop)
    assert np.abs(actual - expected).max() < 1e-5


def test_grey_images_give_the_pixels_of_their_rgb_copies() -> None:
    """The runtime resizes grey images before widening them to RGB; the result must not move."""
    grey = Image.fromarray(skimage_data.camera()[:300, :250])
    encoded = {}
    for mode in ("L", "RGB"):
        buffer = io.BytesIO()
        grey.convert(mode).save(buffer, format="PNG")
        encoded[mode] = buffer.getvalue()
    preprocess = ImagePreprocessor(get_model("mobilenet_v2").preprocessing)
    batch = preprocess.batch([encoded["L"], encoded["RGB"]])
    assert batch.flags.c_contiguous and batch.shape == (2, 3, 224, 224)
    assert np.array_equal(batch[0], batch[1])
    assert np.array_equal(batch[0], preprocess(np.asarray(grey)))


def test_bundle_has_both_engines_and_runs_the_cat(mobilenet_bundle: Bundle) -> None:
    manifest = mobilenet_bundle.manifest
    assert [(m.engine, m.precision) for m in manifest.models] == [
        ("onnxruntime", "fp32"),
        ("openvino", "fp32"),
    ]
    assert manifest.inputs[0].shape == (-1, 3, 224, 224) and len(manifest.labels) == 1000
    assert manifest.models[0].details["max_relative_deviation_vs_torch"] < 1e-4
    entry = get_model("mobilenet_v2")
    with torch.no_grad():
        x = eval_transform(entry.preprocessing)(Image.fromarray(skimage_data.chelsea()))[None]
        reference = entry.create().eval()(x).softmax(-1)[0].numpy()
    for engine in ("onnxruntime", "openvino"):
        predictor = Predictor(mobilenet_bundle, engine=engine)
        cat, coffee = predictor.predict([skimage_data.chelsea(), skimage_data.coffee()], top_k=3)
        assert cat.label in CAT_LABELS, engine
        assert coffee.label not in CAT_LABELS, engine
        probabilities = predictor.probabilities(predictor.encoder.encode([skimage_data.chelsea()]))
        assert np.abs(probabilities[0] - reference).max() < 1e-4, engine


def test_batch_axis_is_dynamic(mobilenet_bundle: Bundle) -> None:
    predictor = Predictor(mobilenet_bundle, engine="onnxruntime")
    images = [skimage_data.chelsea()] * 3
    batched = predictor.probabilities(predictor.encoder.encode(images))
    single = predictor.probabilities(predictor.encoder.encode(images[:1]))
    assert batched.shape == (3, 1000) and np.allclose(batched[2], single[0], atol=1e-5)


def test_tampered_bundle_is_refused_by_the_runtime(
    mobilenet_bundle: Bundle, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(mobilenet_bundle.root, copy)
    with open(copy / "model.onnx", "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match=r"model\.onnx does not match its sha256"):
        Predictor(copy)


def test_export_refuses_what_it_cannot_export(tmp_path: Path, mobilenet_bundle: Bundle) -> None:
    with pytest.raises(EdgeftError, match="no pretrained classification head"):
        export_bundle("minilm", tmp_path / "m")
    with pytest.raises(BundleError, match="already exists"):
        export_bundle("mobilenet_v2", mobilenet_bundle.root)
    with pytest.raises(EdgeftError, match="no int8 model"):
        Predictor(mobilenet_bundle, precision="int8")
    with pytest.raises(EdgeftError, match="unknown engine"):
        Predictor(mobilenet_bundle, engine="tensorrt-9")


def test_a_finetuned_run_exports_and_the_runtime_matches_torch(tmp_path: Path) -> None:
    from edgeft.train import Recipe, finetune
    from edgeft.train.checkpoint import load_weights
    from tests.conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", {"ok": 8, "bad": 8})
    recipe = Recipe(
        model="mobilenet_v2",
        data=str(data),
        strategy="feature-extraction",
        epochs=1,
        batch_size=8,
        image_size=64,
        precision="fp32",
    )
    finetune(recipe, tmp_path / "run")
    bundle = export_bundle(tmp_path / "run", tmp_path / "bundle")
    assert bundle.manifest.labels == ["bad", "ok"]
    assert bundle.manifest.preprocessing.crop == (64, 64)
    assert bundle.manifest.provenance["fine_tuned"] is True
    assert bundle.manifest.provenance["dataset"]["fingerprints"]["test"]
    entry = get_model("mobilenet_v2")
    model = entry.create(num_classes=2).eval()
    load_weights(model, tmp_path / "run" / "model.safetensors")
    image = Image.fromarray(skimage_data.chelsea())
    with torch.no_grad():
        expected = model(eval_transform(bundle.manifest.preprocessing)(image)[None]).softmax(-1)[0]
    for engine in ("onnxruntime", "openvino"):
        predictor = Predictor(bundle, engine=engine)
        got = predictor.probabilities(predictor.encoder.encode([image]))[0]
        assert np.abs(got - expected.numpy()).max() < 1e-4, engine
