"""The upload form and its result page (/), the JSON API (/api/predict), and /health and
/memory-status as the app Dermal replaces exposed them."""
import base64
import os
import time

import dermal
import django
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import engine
from .analysis import analyse
from .forms import UploadForm

# The result page lists the model's stages in the order they run.
_STAGES = ("decode", "preprocess", "lesion_check", "infer", "explain", "overlay")

# Room for the multipart framing and the form's other fields on top of the image itself.
_FORM_OVERHEAD = 64 * 1024


def _too_large(request):
    """Whether the request announces a body over the upload limit: refused before it is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > settings.MAX_UPLOAD_BYTES + _FORM_OVERHEAD


def _flag(value, default):
    """A query or form flag: 1/true/yes/on or 0/false/no/off (ValueError otherwise)."""
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("", "1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false, got %r" % value[:32])


@require_http_methods(["GET", "POST"])
def index(request):
    if request.method == "GET":
        return render(request, "lesions/index.html", {"form": UploadForm()})
    if _too_large(request):
        error = "This file is larger than %d MB." % settings.MAX_UPLOAD_MB
        return render(request, "lesions/index.html", {"form": UploadForm(), "error": error}, status=413)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "lesions/index.html", {"form": form}, status=400)
    started = time.perf_counter()
    try:
        r, overlay = analyse(form.cleaned_data["image"].read(), gradcam=settings.ENABLE_GRADCAM,
                             force=form.cleaned_data["force"])
    except dermal.InvalidImage as e:
        # dermal's own words say what is wrong with the file (truncated, not an image, too large).
        form.add_error("image", str(e))
        return render(request, "lesions/index.html", {"form": form}, status=400)
    except dermal.OutOfResources as e:  # the host's memory, not the file: try again later
        return render(request, "lesions/index.html", {"form": UploadForm(), "error": str(e)}, status=503)
    context = {
        "result": r,
        "classes": [dict(c, percent=100 * c["probability"]) for c in r.top],
        # Inline, so that nothing about the upload is stored or served from a second URL.
        "overlay_uri": "data:image/jpeg;base64," + base64.b64encode(overlay).decode("ascii") if overlay else None,
        "gradcam_enabled": settings.ENABLE_GRADCAM,
        "stages": [(s, r.timings_ms[s]) for s in _STAGES if s in r.timings_ms],
        "request_ms": round((time.perf_counter() - started) * 1000),  # the first one includes loading the model
        "form": UploadForm(),
    }
    return render(request, "lesions/result.html", context)


def _error(status, message):
    return JsonResponse({"error": message}, status=status)


@csrf_exempt  # a JSON endpoint for scripts: stateless, no cookie or session for CSRF to protect
@require_POST
def api_predict(request):
    """The image as multipart field "image", or as the raw body (Content-Type: image/jpeg...).
    Query (or form) parameters: top_k (3), force (false), gradcam (ENABLE_GRADCAM; it can turn the
    heatmap off, not on). Answer: dermal's result as JSON, with gradcam.overlay_jpeg in base64."""
    if _too_large(request):
        return _error(413, "the request is larger than %d MB" % settings.MAX_UPLOAD_MB)
    multipart = request.content_type == "multipart/form-data"

    def param(name):
        # Form fields only for multipart: reading request.POST would parse a raw image body.
        return request.GET.get(name, request.POST.get(name) if multipart else None)

    try:
        top_k = int(param("top_k") or 3)
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        force = _flag(param("force"), False)
        gradcam = settings.ENABLE_GRADCAM and _flag(param("gradcam"), True)
    except ValueError as e:
        return _error(400, "bad parameter: %s" % e)
    if multipart:
        upload = request.FILES.get("image")
        if upload is None:
            return _error(400, 'no file in the form field "image"')
        image = upload.read()
    else:
        image = request.body
    try:
        r, overlay = analyse(image, gradcam=gradcam, force=force, top_k=top_k)
    except dermal.InvalidImage as e:
        return _error(400, str(e))
    except dermal.OutOfResources as e:
        return _error(503, str(e))
    if overlay:
        r.gradcam["overlay_jpeg"] = base64.b64encode(overlay).decode("ascii")  # as `dermal serve`'s API
    return JsonResponse(r)


def _verbose(request):
    value = request.GET.get("verbose")
    return value is not None and value.strip().lower() not in ("0", "false", "no", "off")


@require_GET
def health(request):
    """{"status": "ok"}; with ?verbose=1 also the versions, the model and the settings. It never
    loads the model: a health probe must stay cheap."""
    body = {"status": "ok"}
    if not _verbose(request):
        return JsonResponse(body)
    model = engine.loaded()
    if model is not None:
        info = {"name": model.name, "path": model.path, "format": model.format, "input": model.input,
                "labels": model.labels}
    else:
        try:
            path = settings.MODEL_PATH or dermal.default_model_path()
        except dermal.Error as e:
            path, body["model_error"] = None, str(e)
        name = os.path.splitext(os.path.basename(path))[0] if path else None
        info = {"name": name, "path": path, "format": None, "input": None, "labels": None}
    load_s = engine.load_seconds()
    info.update(loaded=model is not None, load_s=round(load_s, 2) if load_s is not None else None)
    body.update({
        "version": dermal.__version__,
        "django": django.get_version(),
        "model": info,
        "settings": {name: getattr(settings, name) for name in
                     ("PRELOAD_MODEL", "ENABLE_GRADCAM", "MODEL_PATH", "DERMAL_THREADS", "MAX_UPLOAD_MB", "DEBUG")},
    })
    return JsonResponse(body)


@require_GET
def memory_status(request):
    """The process's resident memory, as the app Dermal replaces reported it."""
    return JsonResponse({"memory": dict(dermal.memory_status(), model_loaded=engine.loaded() is not None)})
