"""Settings of the Dermal example site, read from the environment (the names the app it replaces
used, PRELOAD_MODEL and ENABLE_GRADCAM among them). No database: the site stores nothing."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default):
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("%s=%r: expected true or false" % (name, value))


def env_list(name, default):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# Dev-only fallback so that `manage.py runserver` works out of the box. Set SECRET_KEY in
# production: nothing here is signed with it today (no sessions, no logins), but anything you
# add (messages, sessions) would be, with a key that is public in this repository.
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-insecure-dermal-example-key"
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Behind a proxy that ends HTTPS (PythonAnywhere), Django 4+ checks the form's Origin header
# against these, e.g. "https://you.pythonanywhere.com".
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Dermal. PRELOAD_MODEL: load the model when the server starts (dermal_site/wsgi.py) so that the
# first request is as fast as the others; false: on the first request that needs it.
PRELOAD_MODEL = env_bool("PRELOAD_MODEL", True)
# ENABLE_GRADCAM: draw the Grad-CAM heatmap over the image on the result page and in /api/predict.
ENABLE_GRADCAM = env_bool("ENABLE_GRADCAM", True)
# MODEL_PATH: an .onnx, .keras or .h5 classifier with its model card beside it; empty: the model
# bundled with dermal (models/skinnet_mnv2_ham_isic224.onnx).
MODEL_PATH = os.environ.get("MODEL_PATH", "").strip() or None
# DERMAL_THREADS: compute threads of the model; 0 uses every core.
DERMAL_THREADS = env_int("DERMAL_THREADS", 0)

# Uploads: one image, up to MAX_UPLOAD_MB (25, as `dermal serve`); larger requests get 413 before
# their body is read (lesions/views.py). Up to the limit an upload stays in memory, so no image is
# ever written to disk; a raw-body /api/predict above it is refused by Django (400).
MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 25)
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES

INSTALLED_APPS = ["lesions"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dermal_site.urls"
WSGI_APPLICATION = "dermal_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

DATABASES = {}  # nothing is stored: Django falls back to its dummy backend

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# The model's load time and load errors go to the console (the server's log on a host).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"lesions": {"handlers": ["console"], "level": "INFO"}},
}
