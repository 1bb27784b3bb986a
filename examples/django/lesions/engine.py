"""The one dermal.Model of this process, created once and shared by every request thread: dermal's
calls release the GIL and a Model may be used by several threads at once, so no request waits for
another to load or copy it."""
import logging
import os
import threading
import time

import dermal
from django.conf import settings

log = logging.getLogger("lesions")

_lock = threading.Lock()
_model = None
_owner_pid = None  # the process that loaded it (see get_model)
_load_seconds = None


def get_model():
    """The model, loaded on first use (or by preload() at start-up)."""
    model = _model
    if model is None:
        with _lock:
            if _model is None:  # another thread may have loaded it while this one waited
                _load()
            model = _model
    if _owner_pid != os.getpid():
        # A copy inherited through fork(): its compute threads (OpenMP) stayed in the parent and
        # the first prediction would hang, so say what to change instead.
        raise RuntimeError("the model was loaded before this worker process was forked: set "
                           "PRELOAD_MODEL=false, or have the server load the app in each worker "
                           "(uWSGI lazy-apps, no gunicorn --preload)")
    return model


def _load():
    global _model, _owner_pid, _load_seconds
    started = time.monotonic()
    model = dermal.Model(settings.MODEL_PATH, threads=settings.DERMAL_THREADS)
    _load_seconds = time.monotonic() - started
    _model, _owner_pid = model, os.getpid()
    log.info("dermal %s: loaded %s (%s) in %.1f s", dermal.__version__, model.path, model.format, _load_seconds)


def preload():
    """Load the model now, so that the first request is as fast as the others. Under uWSGI, whose
    master imports the application and then forks the workers, load it in each worker after the
    fork instead (a model loaded before a fork is unusable in the children)."""
    try:
        import uwsgidecorators  # importable only inside a uWSGI server
    except ImportError:
        get_model()
    else:
        uwsgidecorators.postfork(get_model)


def loaded():
    """The model if this process has loaded it, else None: /health reports without loading it."""
    return _model if _owner_pid == os.getpid() else None


def load_seconds():
    return _load_seconds
