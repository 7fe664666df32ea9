"""``hash``: NRDH's stage 2, the hash-function network (paper section 3.2, Table 2), and ``hash.cnn``, the
options of the network the paper trains on the images."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from graphhash.params import NonNegative, Positive, Section, Seed, Unit

Augmentation = Literal["crop", "flip", "jitter"]


class CnnParams(Section):
    """``hash.network: cnn``: the run's backbone with Table 2's head, trained on the training images."""

    section = "cnn"

    trainable: Annotated[int, Field(ge=0, le=1000)] = Field(
        2,
        description="backbone stages trained, counted from the end (efficientnet_lite0 has 18, vit_b_16 14); "
        "0: frozen; the frozen part runs once per image when augment is empty",
    )
    augment: Annotated[list[Augmentation], Field(max_length=3)] = Field(
        [],
        description="crop (random resized, area >= crop_scale) | flip (horizontal) | jitter (brightness, "
        "contrast, saturation x [0.6, 1.4]); []: none, as the paper",
    )
    crop_scale: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.5, description="with crop: the smallest fraction of the image's area a crop keeps"
    )
    image_size: Annotated[int, Field(ge=16, le=1024)] = Field(
        96, description="images are resized to image_size x image_size (vit_b_16 with ImageNet weights: 224)"
    )
    steps: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        1000, description="Adam steps, whatever the dataset's size; checkpointed after every epoch"
    )
    batch_size: Annotated[int, Field(ge=2, le=65536)] = Field(64, description="images per Adam step")
    lr: Positive = Field(0.0001, description="Adam's learning rate for the trained backbone stages (the head: hash.lr)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when present (bf16, channels-last), else CPU (fp32, same bytes every run)"
    )
    num_workers: Literal["auto"] | Annotated[int, Field(ge=0, le=64)] = Field(
        "auto", description="DataLoader processes decoding images; auto: 0 on CPU, up to 8 with CUDA"
    )


class HashParams(Section):
    """NRDH stage 2: the hash network (section 3.2, Table 2), fitted to the representations."""

    section = "hash"

    network: Literal["mlp", "cnn"] = Field(
        "mlp",
        description="mlp: Table 2's head on the frozen features | cnn: the backbone and the head trained on "
        "the images (the paper; options in hash.cnn)",
    )
    input: Literal["features", "graph"] = Field(
        "graph", description="features: x (the paper) | graph: x over its kNN graph, for queries too"
    )
    target: Literal["representation", "rotated"] = Field(
        "rotated", description="what fc(x) fits: representation, g(x) (the paper) | rotated: g(x) centred, ITQ-rotated"
    )
    input_p: Unit = Field(0.3, description="with input: graph, the weight an item keeps for itself (p of Eq. 4)")
    mu: NonNegative = Field(0.8, description="weight of MSE(fc(x), representation) (Eq. 18)")
    omega: NonNegative = Field(0.2, description="weight of BCE(fch(x), b) (Eq. 18)")
    similarity: NonNegative = Field(
        2.0,
        description="lambda, weight of L_s: the cosines of pairs of bi-half codes of fc(x) matched to their "
        "representations' cosines (BiHalf's objective on g(x)); 0: none, as the paper",
    )
    gamma: NonNegative = Field(
        6.0,
        description="weight of L_p, the pull of fc(x) towards its bi-half codes (every bit half +1, half -1 "
        "in a batch; BiHalf's gamma: 6); 0: none, as the paper",
    )
    steps: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        600, description="Adam steps, whatever the dataset's size"
    )
    batch_size: Annotated[int, Field(ge=2, le=1_000_000)] = Field(256, description="items per Adam step")
    lr: Positive = Field(0.001, description="Adam's learning rate")
    negative_slope: Unit = Field(0.2, description="LeakyReLU slope (Eq. 10)")
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0, description="mlp: the probability of dropping each hidden unit in training (Table 2: 0)"
    )
    seed: Seed = Field(0, description="initialisation, batch order and augmentations")
    cnn: CnnParams = Field(default_factory=CnnParams)
