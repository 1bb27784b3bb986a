"""The example site through Django's test client, with the real model and no database.

    cd examples/django && PYTHONPATH=../../build/python python3 manage.py test lesions -v 2

The lesion image is DERMAL_SHARED_DIR/data/ham10000/images/ISIC_0024306.jpg (DERMAL_SHARED_DIR
defaults to the repository's ../shared); the tests that need it are skipped without it. The other
images are made here.
"""
import base64
import io
import json
import os
import struct
import threading
import zlib
from pathlib import Path
from unittest import skipUnless

import dermal
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, SimpleTestCase, override_settings
from django.utils.html import escape

from . import engine

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("DERMAL_SHARED_DIR") or REPO.parent / "shared")
LESION = SHARED / "data" / "ham10000" / "images" / "ISIC_0024306.jpg"
NO_LESION = "needs the HAM10000 image %s (set DERMAL_SHARED_DIR to the folder holding data/)" % LESION
JPEG_MAGIC = b"\xff\xd8\xff"


def grey_png(width=64, height=64):
    """A flat grey RGB PNG, written with the standard library only."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))  # filter byte 0, then RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def not_a_lesion():
    """A photo that is no skin lesion: scikit-image's cup of coffee as JPEG, else a grey PNG."""
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return "grey.png", grey_png(), "image/png"
    out = io.BytesIO()
    Image.fromarray(data.coffee()).save(out, "JPEG", quality=90)
    return "coffee.jpg", out.getvalue(), "image/jpeg"


def upload(data, name="lesion.jpg", content_type="image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def reference_model():
    """A model of the tests' own, not the site's, to compare the site's answers with."""
    return dermal.Model(settings.MODEL_PATH, threads=settings.DERMAL_THREADS)


class FormTests(SimpleTestCase):
    """The upload page and its refusals; none of these needs the HAM10000 image."""

    def test_form_page_renders(self):
        r = self.client.get("/")
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, 'enctype="multipart/form-data"')
        self.assertContains(r, 'type="file" name="image"')
        self.assertContains(r, 'name="csrfmiddlewaretoken"')
        self.assertContains(r, "Not a medical device")

    def test_post_needs_the_csrf_token(self):
        r = Client(enforce_csrf_checks=True).post("/", {"image": upload(grey_png(), "grey.png", "image/png")})
        self.assertEqual(r.status_code, 403)

    def test_post_without_a_file_is_400(self):
        r = self.client.post("/", {})
        self.assertContains(r, "This field is required", status_code=400)

    def test_corrupt_upload_is_400_with_dermals_message(self):
        corrupt = grey_png()[:80]  # a PNG cut short
        with self.assertRaises(dermal.InvalidImage) as raised:
            engine.get_model().predict(corrupt)
        message = str(raised.exception)
        r = self.client.post("/", {"image": upload(corrupt, "cut.png", "image/png")})
        self.assertContains(r, escape(message), status_code=400)
        r = self.client.post("/api/predict", {"image": upload(corrupt, "cut.png", "image/png")})
        self.assertEqual(r.status_code, 400)
        self.assertEqual(r.json(), {"error": message})

    @override_settings(MAX_UPLOAD_MB=0, MAX_UPLOAD_BYTES=100_000)
    def test_upload_over_the_limit_is_refused_unread(self):
        big = upload(b"\xff\xd8\xff" + b"\0" * 200_000)
        r = self.client.post("/", {"image": big})
        self.assertContains(r, "larger than", status_code=413)
        big.seek(0)
        self.assertEqual(self.client.post("/api/predict", {"image": big}).status_code, 413)

    def test_non_lesion_image_is_withheld_on_the_page(self):
        name, data, content_type = not_a_lesion()
        r = self.client.post("/", {"image": upload(data, name, content_type)})
        self.assertEqual(r.status_code, 200)
        result = r.context["result"]
        self.assertTrue(result.diagnosis_withheld)
        self.assertFalse(result.lesion_check["passed"])
        self.assertContains(r, "This does not look like a skin-lesion image")
        self.assertContains(r, escape(result.lesion_check["reason"]))
        self.assertEqual(r.context["classes"], [])
        self.assertNotContains(r, 'id="classes"')
        self.assertNotContains(r, "data:image/jpeg")


class ApiTests(SimpleTestCase):
    """/api/predict on images made here."""

    def test_non_lesion_image_is_withheld_in_the_json(self):
        name, data, content_type = not_a_lesion()
        j = self.client.post("/api/predict", {"image": upload(data, name, content_type)}).json()
        self.assertTrue(j["diagnosis_withheld"])
        self.assertFalse(j["lesion_check"]["passed"])
        self.assertEqual(j["top"], [])
        self.assertIsNone(j["probabilities"])
        self.assertIsNone(j["gradcam"])

    def test_force_analyses_it_anyway(self):
        name, data, content_type = not_a_lesion()
        r = self.client.post("/api/predict?force=1&gradcam=0", {"image": upload(data, name, content_type)})
        j = r.json()
        self.assertFalse(j["diagnosis_withheld"])
        self.assertFalse(j["lesion_check"]["passed"])
        self.assertEqual(len(j["top"]), 3)
        self.assertAlmostEqual(sum(j["probabilities"].values()), 1.0, places=6)

    def test_refusals(self):
        self.assertEqual(self.client.get("/api/predict").status_code, 405)
        r = self.client.post("/api/predict", {"other": upload(grey_png())})
        self.assertEqual((r.status_code, r.json()), (400, {"error": 'no file in the form field "image"'}))
        r = self.client.post("/api/predict?top_k=0", {"image": upload(grey_png())})
        self.assertEqual(r.status_code, 400)
        self.assertIn("top_k", r.json()["error"])


@skipUnless(LESION.is_file(), NO_LESION)
class LesionImageTests(SimpleTestCase):
    """A HAM10000 image: the site answers what dermal.Model().predict() answers."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.image = LESION.read_bytes()
        cls.model = reference_model()
        cls.expected = cls.model.predict(cls.image)
        assert not cls.expected.diagnosis_withheld, cls.expected.lesion_check

    def post_page(self):
        r = self.client.post("/", {"image": upload(self.image, LESION.name)})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.context["result"].top[0]["label"], self.expected.top[0]["label"])
        self.assertContains(r, '<tr data-label="%s">' % self.expected.top[0]["label"])
        self.assertContains(r, escape(self.expected.top[0]["name"]))
        return r

    @override_settings(ENABLE_GRADCAM=True)
    def test_page_shows_the_top_class_and_the_overlay(self):
        r = self.post_page()
        self.assertContains(r, "Lesion check passed")
        self.assertContains(r, 'src="data:image/jpeg;base64,')
        overlay = base64.b64decode(r.context["overlay_uri"].split(",", 1)[1])
        # The site draws the map answer() returns: the picture explain() + overlay() give.
        self.assertEqual(overlay, self.model.overlay(self.image, self.model.explain(self.image), format="jpeg"))

    @override_settings(ENABLE_GRADCAM=False)
    def test_page_without_gradcam_has_no_overlay(self):
        r = self.post_page()
        self.assertNotContains(r, "data:image/jpeg")
        self.assertContains(r, "Heatmaps are turned off")

    @override_settings(ENABLE_GRADCAM=True)
    def test_api_matches_predict(self):
        j = self.client.post("/api/predict", {"image": upload(self.image, LESION.name)}).json()
        self.assertEqual([c["label"] for c in j["top"]], [c["label"] for c in self.expected.top])
        self.assertEqual(j["probabilities"].keys(), self.expected.probabilities.keys())
        for code, p in self.expected.probabilities.items():
            self.assertAlmostEqual(j["probabilities"][code], p, delta=1e-9, msg=code)
        self.assertEqual(j["lesion_check"], self.expected.lesion_check)
        self.assertEqual(j["gradcam"]["class"], self.expected.top[0]["label"])
        self.assertNotIn("cam", j["gradcam"])  # the raw grid stays out of the JSON
        self.assertTrue(base64.b64decode(j["gradcam"]["overlay_jpeg"]).startswith(JPEG_MAGIC))

    @override_settings(ENABLE_GRADCAM=False)
    def test_api_raw_body_and_gradcam_off(self):
        # gradcam=1 cannot turn on what ENABLE_GRADCAM turned off
        r = self.client.post("/api/predict?gradcam=1&top_k=7", self.image, content_type="image/jpeg")
        j = r.json()
        self.assertIsNone(j["gradcam"])
        self.assertEqual(len(j["top"]), 7)
        for code, p in self.expected.probabilities.items():
            self.assertAlmostEqual(j["probabilities"][code], p, delta=1e-9, msg=code)


class ServiceTests(SimpleTestCase):
    """/health, /memory-status and the model's life in the process."""

    def test_health(self):
        r = self.client.get("/health")
        self.assertEqual((r.status_code, r.json()), (200, {"status": "ok"}))

    def test_health_verbose(self):
        model = engine.get_model()
        j = self.client.get("/health?verbose=1").json()
        self.assertEqual(j["status"], "ok")
        self.assertEqual(j["version"], dermal.__version__)
        m = j["model"]
        self.assertTrue(m["loaded"])
        self.assertEqual((m["name"], m["format"], m["path"]), (model.name, model.format, model.path))
        self.assertEqual(m["input"], model.input)
        self.assertEqual([label["code"] for label in m["labels"]], [label["code"] for label in model.labels])
        self.assertGreater(m["load_s"], 0)
        self.assertEqual(set(j["settings"]), {"PRELOAD_MODEL", "ENABLE_GRADCAM", "MODEL_PATH", "DERMAL_THREADS",
                                              "MAX_UPLOAD_MB", "DEBUG"})
        json.dumps(j)  # plain JSON all through

    def test_memory_status(self):
        j = self.client.get("/memory-status").json()
        self.assertEqual(set(j), {"memory"})
        memory = j["memory"]
        self.assertGreater(memory["rss_mb"], 0)
        self.assertGreaterEqual(memory["peak_rss_mb"], memory["rss_mb"])
        self.assertIsInstance(memory["model_loaded"], bool)

    def test_one_model_for_all_threads(self):
        models = []
        threads = [threading.Thread(target=lambda: models.append(engine.get_model())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len({id(m) for m in models}), 1)

    def test_a_model_inherited_through_fork_is_refused(self):
        engine.get_model()
        owner = engine._owner_pid
        engine._owner_pid = -1  # as in a worker forked after the model was loaded
        try:
            with self.assertRaisesRegex(RuntimeError, "PRELOAD_MODEL=false"):
                engine.get_model()
            self.assertIsNone(engine.loaded())
        finally:
            engine._owner_pid = owner

    @override_settings(PRELOAD_MODEL=True)
    def test_wsgi_preloads_the_model(self):
        from dermal_site import wsgi
        self.assertTrue(callable(wsgi.application))
        self.assertIsNotNone(engine.loaded())
