"""The three models of the paper. Input "face": (48, 48, 1) float32 raw 0..255; output: one softmax prob
per label (FER2013's 7 by default, ``num_classes=8`` for FER+'s labels, train/ferplus.py).

Keras 3 layers and keras.ops only (no tf.*), so every model builds on TF, JAX or torch.
Rescaling and augmentation are layers inside the model: the exported file takes the plain face.
"""
from __future__ import annotations

import contextlib

import keras
from keras import layers

from device.contract import INPUT_SHAPE, NUM_CLASSES

from .augment import build_augment
from .layers import FaceStandardize, MirrorFaces, ScaledL2Normalize
from .registry import MODELS, normalize_weights
# Caffe-style ImageNet means (BGR) for keras.applications.ResNet50; one gray channel takes their mean.
IMAGENET_MEAN = (103.939 + 116.779 + 123.68) / 3.0
STEM_POOL = ("pool1_pad", "pool1_pool")


def face_input() -> keras.KerasTensor:
    return keras.Input(INPUT_SHAPE, dtype="float32", name="face")


def _conv_bn_relu(x, filters, kernel=3, name=None):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _classifier(x, units, dropout, num_classes=NUM_CLASSES):
    for u in units:
        x = layers.Dense(u, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
    # float32 whatever the dtype policy: a softmax in bf16 rounds the small probabilities the loss needs
    return layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)


def vanilla_cnn(augment=True, dropout=0.4, seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    """Conv-BN-ReLU blocks with max pooling, then a dense head (~1.2M params, ~75M MACs)."""
    inp = face_input()
    x = build_augment(augment, seed=seed, erasing=erasing)(inp)
    x = layers.Rescaling(1.0 / 255.0)(x)
    for filters, n in ((32, 1), (64, 2), (128, 2), (256, 1)):  # 48 -> 24 -> 12 -> 6 -> 3
        for _ in range(n):
            x = _conv_bn_relu(x, filters)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inp, _classifier(x, (256,), dropout, num_classes), name="vanilla_cnn")


def _residual_block(x, filters):
    shortcut = x
    y = _conv_bn_relu(x, filters)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    return layers.ReLU()(layers.Add()([shortcut, y]))


def vgg_cnn(augment=True, dropout=0.4, seed=None, erasing=0.0, num_classes=NUM_CLASSES,
            widths=(32, 64, 128, 256), name="vgg_cnn", face_norm=False) -> keras.Model:
    """Two conv-BN-ReLU per block (32-64-128-256), max pooling, global average pooling, Dense 256.

    vanilla_cnn's size (~1.24M params) but VGG's shape: a second conv at every scale sees more
    context before each pooling, and GAP instead of Flatten leaves few weights to overfit in the head.
    """
    inp = face_input()
    x = build_augment(augment, seed=seed, erasing=erasing)(inp)
    x = layers.Rescaling(1.0 / 255.0)(x)
    if face_norm:  # after augmentation: the camera's light is what it undoes
        x = FaceStandardize(name="face_standardize")(x)
    for filters in widths:  # 48 -> 24 -> 12 -> 6 -> 3
        x = _conv_bn_relu(_conv_bn_relu(x, filters), filters)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inp, _classifier(x, (widths[-1],), dropout, num_classes), name=name)


def vgg_cnn_wide(augment=True, dropout=0.4, seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    """vgg_cnn 1.5 times as wide (48-96-192-384, Dense 384; ~2.8M params, 2.25 times the MACs): still
    about 1 ms per face in int8 on one core of a VNNI CPU, and more room for a distilled student."""
    return vgg_cnn(augment, dropout, seed, erasing, num_classes, widths=(48, 96, 192, 384), name="vgg_cnn_wide")


def vgg_cnn_norm(augment=True, dropout=0.4, seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    """vgg_cnn that sees each face at one brightness and contrast (``FaceStandardize``): same weights."""
    return vgg_cnn(augment, dropout, seed, erasing, num_classes, name="vgg_cnn_norm", face_norm=True)


def residual_cnn(augment=True, dropout=0.4, seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    """Fewer plain conv blocks, plus residual blocks (identity shortcuts) at each scale."""
    inp = face_input()
    x = build_augment(augment, seed=seed, erasing=erasing)(inp)
    x = layers.Rescaling(1.0 / 255.0)(x)
    x = layers.MaxPooling2D()(_conv_bn_relu(x, 32))           # 24
    x = layers.MaxPooling2D()(_conv_bn_relu(x, 64))           # 12
    x = _residual_block(_residual_block(x, 64), 64)
    x = layers.MaxPooling2D()(_conv_bn_relu(x, 128))          # 6
    x = _residual_block(x, 128)
    x = layers.MaxPooling2D()(_conv_bn_relu(x, 256))          # 3
    x = _residual_block(x, 256)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inp, _classifier(x, (128,), dropout, num_classes), name="residual_cnn")


# MobileNetV2's (expansion t, channels c, blocks n, first stride s) per stage, for a 48x48 face: the stem
# keeps 48x48, four strides reach 3x3 (vgg_cnn's last grid). One block at 24x24, two at 12x12 and at 6x6,
# five at 3x3, where channels are many but positions few: ~5.7 M MACs a pass at width 1.
MOBILE_STAGES = ((1, 16, 1, 2), (3, 24, 2, 2), (3, 40, 2, 2), (3, 80, 3, 2), (4, 128, 2, 1))


def _divisible(channels: float, by: int = 8) -> int:
    """Round a scaled width to a multiple of 8 (what int8 kernels vectorise), never below 8 nor 10% under."""
    out = max(by, int(channels + by / 2) // by * by)
    return out + by if out < 0.9 * channels else out


def _bn_relu6(x):
    # ReLU6 bounds every activation to 0..6: a fixed int8 range, folded into the conv by the converter
    return layers.ReLU(6.0)(layers.BatchNormalization()(x))


def _inverted_residual(x, expansion: int, filters: int, stride: int):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise (the stride), linear 1x1 project, identity shortcut
    when the shape is kept. ``expansion`` 1 is a depthwise-separable block."""
    channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _bn_relu6(layers.Conv2D(channels * expansion, 1, use_bias=False)(y))
    y = _bn_relu6(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y))
    y = layers.BatchNormalization()(layers.Conv2D(filters, 1, use_bias=False)(y))  # linear: no ReLU here
    return layers.Add()([x, y]) if stride == 1 and channels == filters else y


def mobile_cnn(augment=True, dropout=0.2, seed=None, erasing=0.0, num_classes=NUM_CLASSES, width=1.0,
               stages=MOBILE_STAGES, stem=16, head=256, name="mobile_cnn") -> keras.Model:
    """Inverted residuals (MobileNetV2) for a 48x48 face: stem 3x3 conv, ``stages``, 1x1 conv to ``head``
    channels, GAP, softmax. ``width`` scales the stem and every stage (the head only grows, as in
    MobileNetV2: the classifier keeps its features). Every layer has an int8 kernel (Conv2D,
    DepthwiseConv2D, BatchNorm folded, ReLU6, Add, mean), so the int8 file is integer end to end.
    """
    inp = face_input()
    x = build_augment(augment, seed=seed, erasing=erasing)(inp)
    x = layers.Rescaling(1.0 / 255.0)(x)
    x = _bn_relu6(layers.Conv2D(_divisible(stem * width), 3, padding="same", use_bias=False)(x))
    for expansion, filters, n, stride in stages:
        for i in range(n):
            x = _inverted_residual(x, expansion, _divisible(filters * width), stride if i == 0 else 1)
    x = _bn_relu6(layers.Conv2D(_divisible(head * max(width, 1.0)), 1, use_bias=False)(x))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inp, _classifier(x, (), dropout, num_classes), name=name)


def mobile_cnn_small(augment=True, dropout=0.2, seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    """mobile_cnn at half width (~2 M MACs a pass): the Pi Zero tier, or four passes in a flip-TTA pair."""
    return mobile_cnn(augment, dropout, seed, erasing, num_classes, width=0.5, name="mobile_cnn_small")


def mobile_cnn_wide(augment=True, dropout=0.2, seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    """mobile_cnn 1.4 times as wide (~11 M MACs a pass): a whole 12 M budget spent on one pass, no mirror."""
    return mobile_cnn(augment, dropout, seed, erasing, num_classes, width=1.4, name="mobile_cnn_wide")


def gray_resnet50(base: keras.Model, keep_stem_pool: bool = False) -> keras.Model:
    """A 3-channel ResNet50 -> the same network on one gray channel (paper eq. 1).

    conv1's kernel is summed over its input channels, which is exactly the 3-channel net fed
    the gray image repeated three times. The stem max-pool is replaced by Identity unless
    ``keep_stem_pool``, so a 48x48 face keeps 3x3 (not 2x2) positions at conv5.
    """
    def clone(layer):
        if not keep_stem_pool and layer.name in STEM_POOL:
            return layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    inp = keras.Input((None, None, 1), name="gray")
    model = keras.models.clone_model(base, input_tensors=inp, clone_function=clone)
    for new in model.layers:
        if not new.weights:
            continue
        weights = base.get_layer(new.name).get_weights()
        if new.name == "conv1_conv":
            weights[0] = weights[0].sum(axis=2, keepdims=True)
        new.set_weights(weights)
    return model


def build_resnet50_parts(weights=None, keep_stem_pool=False, augment=True, dropout=0.3, seed=None,
                         num_classes=NUM_CLASSES):
    """(augment, preprocess_and_backbone, head): full model = head(backbone(augment(face))).

    ``weights``: "imagenet" (Keras download), None (random init) or a local .h5/.weights.h5 path.
    The backbone is frozen; the head is the paper's refinement + compression + classifier and can
    be trained alone on cached backbone features (train/cache.py).
    """
    weights = normalize_weights(weights)
    base = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(48, 48, 3))
    gray = gray_resnet50(base, keep_stem_pool)
    inp = face_input()
    x = layers.Rescaling(1.0, offset=-IMAGENET_MEAN, name="imagenet_mean")(inp)
    backbone = keras.Model(inp, gray(x), name="backbone")
    backbone.trainable = False

    feat = keras.Input(backbone.output.shape[1:], name="features")
    x = feat
    # Refinement: 1x1 convs reorganise channels; "same" max pools shrink 3x3 (or 2x2) to a 1x1x128 cube.
    for filters in (512, 128):
        x = _conv_bn_relu(x, filters, kernel=1)
        x = layers.Dropout(dropout)(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = ScaledL2Normalize(name="l2_normalize")(x)
    head = keras.Model(feat, _classifier(x, (128, 64), dropout, num_classes), name="head")
    return build_augment(augment, seed=seed), backbone, head


def assemble(augment: keras.Model, backbone: keras.Model, head: keras.Model, name="resnet50") -> keras.Model:
    """face -> probabilities, sharing the given parts' layers (and weights)."""
    inp = face_input()
    x = backbone(augment(inp), training=False)  # frozen: BatchNorm always in inference mode
    return keras.Model(inp, head(x), name=name)


def resnet50(weights=None, keep_stem_pool=False, augment=True, dropout=0.3, seed=None,
             num_classes=NUM_CLASSES) -> keras.Model:
    return assemble(*build_resnet50_parts(weights, keep_stem_pool, augment, dropout, seed, num_classes))


BUILDERS = {"vanilla_cnn": vanilla_cnn, "residual_cnn": residual_cnn, "vgg_cnn": vgg_cnn, "vgg_cnn_wide": vgg_cnn_wide,
            "vgg_cnn_norm": vgg_cnn_norm,
            "mobile_cnn": mobile_cnn, "mobile_cnn_small": mobile_cnn_small, "mobile_cnn_wide": mobile_cnn_wide}
assert set(BUILDERS) | {"resnet50"} == set(MODELS), "train/registry.py and train/models.py disagree"


def build_model(name: str, *, weights=None, keep_stem_pool=False, augment=True, dropout=None,
                seed=None, erasing=0.0, num_classes=NUM_CLASSES) -> keras.Model:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(MODELS)})")
    dropout = MODELS[name].dropout if dropout is None else dropout
    if name == "resnet50":
        return resnet50(weights, keep_stem_pool, augment, dropout, seed, num_classes)
    return BUILDERS[name](augment, dropout, seed, erasing, num_classes)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside compute in ``name`` (mixed_bfloat16: bf16 math, float32 variables)."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def float32_copy(model: keras.Model, build) -> keras.Model:
    """``model`` (trained under a mixed policy) as a float32 model: ``build()`` again under float32, same
    weights (a mixed policy keeps them in float32). What is saved as model.keras, so that convert, teachers
    and --init-from see one kind of model whatever the training precision."""
    with dtype_policy("float32"):
        twin = build()
    twin.set_weights(model.get_weights())
    return twin


def with_flip_average(model: keras.Model) -> keras.Model:
    """Test-time augmentation inside the model: the mean of its probabilities for the face and its mirror.

    An expression reads the same mirrored, so averaging the two views cancels some of the model's
    left-right noise (+0.8 pp on PublicTest for the 40-epoch vanilla_cnn) at twice the model's cost,
    which the device loop barely notices (the Haar detector dominates). The weights are shared:
    the converted file is hardly larger. Used by ``convert --flip-tta``; training is unchanged.
    """
    return averaged([model], flip=True)


def averaged(models: list[keras.Model], flip: bool = False) -> keras.Model:
    """One model whose output is the mean of every member's probabilities (an ensemble), each on the
    face and, with ``flip``, on its mirror too: ``convert --member RUN`` and ``--flip-tta``.

    The members must share the label set (convert checks their metadata). Averaging probabilities,
    not logits: a member's softmax is what it was trained and calibrated to output.
    """
    if len(models) == 1 and not flip:
        return models[0]
    if len(models) > 1:
        for i, m in enumerate(models, 1):  # nested models need distinct names; their layers keep theirs
            m.name = f"member{i}_{m.name}"
    inp = face_input()
    views = [inp, MirrorFaces(name="mirror")(inp)] if flip else [inp]
    probs = layers.Average(name="probs")([m(v) for m in models for v in views])
    name = models[0].name if len(models) == 1 else f"ensemble{len(models)}"
    return keras.Model(inp, probs, name=f"{name}_flip_tta" if flip else name)


def unfreeze_top(model: keras.Model, prefix: str = "conv5_") -> int:
    """Phase 2: make the backbone's top stage trainable, BatchNorm excluded; returns #layers unfrozen."""
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    n = 0
    for layer in _all_layers(backbone):
        train = layer.name.startswith(prefix) and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = train
        n += train
    return n


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
