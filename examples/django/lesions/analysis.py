"""One uploaded image through the model, for the page and the API alike."""
import time

from .engine import get_model


def analyse(image, *, gradcam, force=False, top_k=3):
    """dermal's answer for `image` (the uploaded bytes): a dermal.Result (r.top, r.probabilities,
    r.lesion_check, r.diagnosis_withheld, r.timings_ms, r.gradcam) and the Grad-CAM overlay as
    JPEG bytes, or None when `gradcam` is off or the lesion check withheld the diagnosis.
    Raises dermal.InvalidImage for a file that is not a readable JPEG, PNG or WebP image."""
    model = get_model()
    if not gradcam:
        return model.predict(image, top_k=top_k, force=force), None
    # answer() classifies and computes the class activation map in one forward and backward
    # pass; its raw map ("cam", the layer's grid), resized by overlay(), gives the same picture as
    # overlay(image, explain(image)), which would run the network a second time.
    r = model.answer(image, top_k=top_k, force=force)
    if not r.gradcam:  # withheld: nothing explained, as the API does
        return r, None
    started = time.perf_counter()
    overlay = model.overlay(image, r.gradcam.pop("cam"), alpha=0.4, colormap="jet", format="jpeg")
    r.timings_ms["overlay"] = round((time.perf_counter() - started) * 1000, 3)
    return r, overlay
