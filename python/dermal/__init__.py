"""Dermal in a Python process: skin-lesion classification with Grad-CAM explanations.

    import dermal
    m = dermal.Model("models/skinnet_mnv2_ham_isic224.onnx")   # or .keras / .h5; dermal.Model(): the bundled one
    r = m.predict(image)     # bytes of a JPEG/PNG/WebP, a PIL image, or an HxWx3 uint8 numpy array
    r.top, r.probabilities, r.lesion_check, r.timings_ms        # the fields of the JSON API
    h = m.explain(image, method="gradcam", target="mel")        # HxW float32 numpy map in [0, 1]
    png = m.overlay(image, h, alpha=0.4, colormap="jet")        # bytes

The engine is C++ (dermal._core); calls release the GIL and a Model may be shared by threads.
Not a medical device: an aid for research and education, never a diagnosis.
"""

import os

from ._core import (Error, InvalidImage, InvalidModel, OutOfResources, UnsupportedModel, __version__,
                    memory_status, set_threads)
from ._core import Model as _CoreModel

__all__ = ["Model", "Result", "Error", "InvalidImage", "InvalidModel", "UnsupportedModel", "OutOfResources",
           "memory_status", "set_threads", "default_model_path", "__version__"]

DEFAULT_MODEL = "skinnet_mnv2_ham_isic224.onnx"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _model_dirs():
    """The bundled models: inside the installed package (a wheel), else the repository's models/."""
    candidates = [os.path.join(_HERE, "models"), os.path.join(_HERE, "..", "..", "..", "models"),
                  os.path.join(_HERE, "..", "..", "models")]
    return [os.path.normpath(d) for d in candidates if os.path.isfile(os.path.join(d, DEFAULT_MODEL))]


def default_model_path():
    """MODEL_PATH, else the bundled default model."""
    if os.environ.get("MODEL_PATH"):
        return os.environ["MODEL_PATH"]
    dirs = _model_dirs()
    if not dirs:
        raise InvalidModel("no model given and the bundled %s was not found: pass a path or set MODEL_PATH" % DEFAULT_MODEL)
    return os.path.join(dirs[0], DEFAULT_MODEL)


class Result(dict):
    """One image's answer: the JSON API's fields as a dict, and as attributes (r.top, r.probabilities,
    r.lesion_check, r.diagnosis_withheld, r.gradcam, r.image, r.timings_ms, r.model)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Model:
    """A classifier loaded once: an ONNX or Keras (.keras, .h5) file, with its model card beside it
    (x.onnx + x.json) or given as `card`. lesion_check: "on" (withhold the diagnosis of an image
    that is not a skin lesion), "warn" or "off". threads: compute threads (0: every core).
    precision: "f32" or "bf16" for the convolutions (None: the card's, else f32); bf16 runs only on
    CPUs with AVX-512 BF16, f32 elsewhere (the `precision` property says what runs). f32_nodes: in
    bf16, the convolutions (node names) that stay f32 (None: the card's `f32_nodes`). logit_offsets:
    the operating point, {code: b} added to the temperature-scaled logits (None: the card's; {}: none),
    as the CLI's --logit-offsets."""

    def __init__(self, path=None, card=None, *, lesion_check="on", threads=0, temperature=None, display_size=1024,
                 precision=None, f32_nodes=None, logit_offsets=None):
        if precision not in (None, "f32", "bf16"):
            raise ValueError("precision must be 'f32' or 'bf16', got %r" % (precision,))
        path = os.fspath(path) if path is not None else default_model_path()
        self._m = _CoreModel(path, os.fspath(card) if card else "", lesion_check, int(threads),
                             float(temperature or 0), _model_dirs(), int(display_size), precision or "",
                             None if f32_nodes is None else [str(n) for n in f32_nodes],
                             None if logit_offsets is None else {str(c): float(b) for c, b in dict(logit_offsets).items()})

    name = property(lambda self: self._m.name, doc="The model file's stem, as the API's 'model' field")
    path = property(lambda self: self._m.path)
    labels = property(lambda self: self._m.labels, doc="[{code, name, malignant}] in output order")
    input = property(lambda self: self._m.input, doc="{name, width, height, channels, layout}")
    format = property(lambda self: self._m.format, doc="onnx, keras or hdf5")
    precision = property(lambda self: self._m.precision, doc="What the convolutions run in: f32 or bf16")
    temperature = property(lambda self: self._m.temperature, doc="The softmax temperature the probabilities use")
    logit_offsets = property(lambda self: self._m.logit_offsets,
                             doc="The operating point: {code: b} added to the temperature-scaled logits")

    def predict(self, image, top_k=3, force=False):
        """The most likely classes: Result with top, probabilities, lesion_check, timings_ms."""
        return Result(self._m.predict(image, top_k=top_k, force=force))

    def answer(self, image, method="gradcam", target="top", layer="auto", aug_smooth=False, top_k=3, force=False):
        """predict() and the class activation map, as `dermal explain --json` gives them: Result.gradcam
        holds the method, layer, class and the raw map at the layer's resolution ("cam")."""
        return Result(self._m.predict(image, top_k=top_k, force=force, explain=True, method=method, target=target,
                                      layer=layer, aug_smooth=aug_smooth))

    def explain(self, image, method="gradcam", target="top", layer="auto", aug_smooth=False):
        """The class activation map over the image (H x W float32 numpy array in [0, 1]). method:
        gradcam, gradcam++, hirescam, xgradcam, layercam, eigencam, scorecam; target: "top", a label
        code ("mel") or a class index; layer: "auto" or a tensor name (dermal inspect lists them)."""
        return self._m.explain(image, method=method, target=str(target), layer=layer, aug_smooth=aug_smooth)

    def overlay(self, image, heatmap, alpha=0.4, colormap="jet", format="png"):
        """The image with the heatmap drawn over it, encoded (format png or jpeg): bytes."""
        return self._m.overlay(image, heatmap, alpha=alpha, colormap=colormap, format=format)

    def __repr__(self):
        return "dermal.Model(%r)" % self.path
