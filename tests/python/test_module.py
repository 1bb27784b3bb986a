"""`import dermal` against the command line on real images (the same classifier path: the same
probabilities to 1e-6 and the same Grad-CAM map), every input type, every error type, and threads
sharing one model. Run by ctest (python_module) with PYTHONPATH=build/python and DERMAL_CLI set:

    PYTHONPATH=build/python DERMAL_CLI=build/dermal /usr/bin/python3 -m unittest tests/python/test_module.py
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np
from PIL import Image

import dermal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("DERMAL_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
CLI = os.environ.get("DERMAL_CLI", os.path.join(ROOT, "build", "dermal"))
IMAGES = [os.path.join(SHARED, "data", "ham10000", "images", i + ".jpg")
          for i in ("ISIC_0024306", "ISIC_0024315", "ISIC_0024318", "ISIC_0024324")]
GRAY_MODEL = os.path.join(ROOT, "tests", "data", "gray", "gray_nchw.onnx")


def cli_json(*args):
    out = subprocess.run([CLI, *args, "--json"], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Module(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = dermal.Model()

    def test_predict_matches_the_cli(self):
        answers = cli_json("predict", "--top-k", "7", *IMAGES)
        self.assertEqual(len(answers), len(IMAGES))
        for path, cli in zip(IMAGES, answers):
            r = self.model.predict(read(path), top_k=7)
            self.assertEqual(r.model, cli["model"])
            self.assertEqual([c["label"] for c in r.top], [c["label"] for c in cli["top"]])
            for code, p in cli["probabilities"].items():
                self.assertAlmostEqual(r.probabilities[code], p, delta=1e-6)
            self.assertEqual(r.lesion_check["passed"], cli["lesion_check"]["passed"])
            self.assertEqual(set(r.timings_ms), set(cli["timings_ms"]))
            self.assertEqual(r["top"], r.top)  # a dict and attributes

    def test_bf16_precision_matches_the_cli(self):
        # precision="bf16" is the CLI's --precision bf16: the same probabilities to 1e-6, and
        # within a few points of f32's (bf16 where the CPU has it; f32 and the same answer elsewhere).
        m = dermal.Model(precision="bf16")
        self.assertIn(m.precision, ("bf16", "f32"))
        self.assertEqual(self.model.precision, "f32")
        with self.assertRaises(ValueError):
            dermal.Model(precision="f16")
        cli = cli_json("predict", "--precision", "bf16", IMAGES[0])[0]
        r, f32 = m.predict(read(IMAGES[0])), self.model.predict(read(IMAGES[0]))
        for code, p in cli["probabilities"].items():
            self.assertAlmostEqual(r.probabilities[code], p, delta=1e-6)
            self.assertAlmostEqual(r.probabilities[code], f32.probabilities[code], delta=0.05)
        self.assertEqual(r.top[0]["label"], f32.top[0]["label"])

    def test_f32_nodes_keep_bf16_convolutions_f32(self):
        # Every convolution a bf16 plan would round, kept f32: the f32 answer, to rounding.
        plan = json.loads(subprocess.run([CLI, "inspect", "--json", "--precision", "bf16", dermal.default_model_path()],
                                         check=True, capture_output=True, text=True).stdout)
        bf16 = [n["name"] for n in plan["nodes"] if n.get("runs") == "bf16"]
        self.assertEqual(len(bf16), plan["plan"]["bf16_convolutions"])
        m = dermal.Model(precision="bf16", f32_nodes=bf16)
        r, f32 = m.predict(read(IMAGES[0])), self.model.predict(read(IMAGES[0]))
        for code, p in f32.probabilities.items():
            self.assertAlmostEqual(r.probabilities[code], p, delta=1e-6)
        with self.assertRaisesRegex(dermal.InvalidModel, "f32_nodes names 'no such conv', which is no node of the model"):
            dermal.Model(precision="bf16", f32_nodes=["no such conv"])

    def test_logit_offsets_match_the_cli(self):
        # logit_offsets= is the CLI's --logit-offsets: the same probabilities; {} is "none".
        m = dermal.Model(logit_offsets={"mel": 0.7}, lesion_check="off")
        self.assertEqual(m.logit_offsets, {"mel": 0.7})
        self.assertEqual(dermal.Model(logit_offsets={}).logit_offsets, {})
        cli = cli_json("predict", "--logit-offsets", "mel=0.7", "--lesion-check", "off", IMAGES[0])[0]
        r = m.predict(read(IMAGES[0]))
        for code, p in cli["probabilities"].items():
            self.assertAlmostEqual(r.probabilities[code], p, delta=1e-6)
        with self.assertRaisesRegex(dermal.InvalidModel, "logit_offsets names 'melanoma'"):
            dermal.Model(logit_offsets={"melanoma": 1.0})

    def test_explain_matches_the_cli(self):
        path = IMAGES[1]
        for method, target in (("gradcam", "top"), ("gradcam++", "mel")):
            cli = cli_json("explain", "--method", method, "--class", target, path)[0]
            r = self.model.answer(read(path), method=method, target=target)
            self.assertEqual(r.gradcam["class"], cli["gradcam"]["class"])
            self.assertEqual(r.gradcam["layer"], cli["gradcam"]["layer"])
            np.testing.assert_allclose(np.array(r.gradcam["cam"]), np.array(cli["gradcam"]["cam"]), atol=1e-6)
            h = self.model.explain(read(path), method=method, target=target)
            self.assertEqual(h.shape, (150, 200))
            self.assertEqual(h.dtype, np.float32)
            self.assertLess(float(h.min()), 0.01)  # the [0, 1] grid upsampled to the image
            self.assertGreater(float(h.max()), 0.95)
            # The map's peak is where the raw map's peak is (the grid upsampled to the image).
            grid = np.array(r.gradcam["cam"])
            gy, gx = np.unravel_index(grid.argmax(), grid.shape)
            hy, hx = np.unravel_index(h.argmax(), h.shape)
            self.assertLess(abs(hy / 150 - (gy + 0.5) / grid.shape[0]), 1.5 / grid.shape[0])
            self.assertLess(abs(hx / 200 - (gx + 0.5) / grid.shape[1]), 1.5 / grid.shape[1])

    def test_every_input_type_gives_the_same_answer(self):
        data = read(IMAGES[0])
        pil = Image.open(io.BytesIO(data))
        rgb = np.asarray(pil.convert("RGB"))
        expected = self.model.predict(data).probabilities
        inputs = {
            "bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data), "PIL": pil,
            "numpy": rgb, "numpy (non-contiguous)": np.ascontiguousarray(rgb[:, ::-1])[:, ::-1],
            "numpy RGBA": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
            "PIL RGBA": pil.convert("RGBA"),
        }
        for name, image in inputs.items():
            with self.subTest(name):
                got = self.model.predict(image).probabilities
                for code in expected:
                    self.assertAlmostEqual(got[code], expected[code], delta=1e-6, msg=name)
        gray = np.asarray(pil.convert("L"))
        self.assertEqual(set(self.model.predict(gray).probabilities), set(expected))  # H x W: gray to RGB
        self.assertEqual(self.model.explain(rgb).shape, rgb.shape[:2])
        png = self.model.overlay(rgb, self.model.explain(rgb), alpha=0.5, colormap="viridis")
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(Image.open(io.BytesIO(png)).size, (200, 150))
        jpeg = self.model.overlay(data, np.zeros((3, 4), np.float32), format="jpeg")  # resized to the image
        self.assertEqual(Image.open(io.BytesIO(jpeg)).size, (200, 150))

    def test_errors_are_python_exceptions_with_the_cli_messages(self):
        with self.assertRaises(dermal.InvalidImage) as e:
            self.model.predict(b"not an image")
        self.assertIsInstance(e.exception, ValueError)
        self.assertIsInstance(e.exception, dermal.Error)
        self.assertIn("not an image", str(e.exception))
        truncated = read(IMAGES[0])[:300]
        with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
            f.write(truncated)
            f.flush()
            cli = subprocess.run([CLI, "predict", f.name], capture_output=True)
        with self.assertRaises(dermal.InvalidImage) as e:
            self.model.predict(truncated)
        self.assertIn(str(e.exception), cli.stderr.decode())
        for bad, says in ((np.zeros((4, 4, 2), np.uint8), "H x W x 3"), (np.zeros((4, 4, 3), np.float32), "uint8"),
                          (np.zeros((0, 4, 3), np.uint8), "1 to 65536"), (42, "an image must be"), (b"", "empty")):
            with self.assertRaises(dermal.InvalidImage) as e:
                self.model.predict(bad)
            self.assertIn(says, str(e.exception))
        with self.assertRaises(dermal.InvalidImage):
            self.model.explain(read(IMAGES[0]), target="no_such_class")
        with self.assertRaises(dermal.InvalidImage):
            self.model.overlay(read(IMAGES[0]), np.zeros(3, np.float32))
        with self.assertRaises(dermal.InvalidModel) as e:
            dermal.Model(__file__)
        self.assertIn("not a model file", str(e.exception))
        with self.assertRaises(dermal.InvalidModel):
            dermal.Model("/no/such/model.onnx")
        unique = os.path.join(os.environ.get("DERMAL_ONNX_TESTDATA", "/usr/share/libonnx-testdata/data/node"),
                              "test_unique_not_sorted_without_axis", "model.onnx")
        with self.assertRaises(dermal.UnsupportedModel) as e:  # an op the engine does not have
            dermal.Model(unique)
        self.assertIn("op 'Unique'", str(e.exception))
        self.assertTrue(issubclass(dermal.UnsupportedModel, dermal.InvalidModel))
        self.assertTrue(issubclass(dermal.OutOfResources, MemoryError))

    def test_threads_share_one_model(self):
        data = [read(p) for p in IMAGES]
        expected = [self.model.predict(d).probabilities for d in data]
        results, failures = {}, []

        def work(k):
            try:
                for j in range(3):
                    i = (k + j) % len(data)
                    results[(k, j)] = (i, self.model.predict(data[i]).probabilities)
                    self.model.explain(data[i])
            except Exception as e:  # noqa: BLE001 -- reported below
                failures.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual(len(results), 18)
        for i, got in results.values():
            for code, p in expected[i].items():
                self.assertAlmostEqual(got[code], p, delta=1e-9)

    def test_first_calls_from_many_threads_at_once(self):
        # A fresh process whose first explain() calls (numpy's first use) come from 8 threads at
        # once, as a threaded server's first requests do: this deadlocked once (a static that
        # pybind11 initialises with Python code, see dermal_module.cpp).
        script = (
            "import threading, dermal\n"
            "m = dermal.Model()\n"
            "data = open(%r, 'rb').read()\n"
            "ts = [threading.Thread(target=lambda: m.overlay(data, m.explain(data))) for _ in range(8)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print('done')\n" % IMAGES[0])
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                             env=dict(os.environ))
        self.assertEqual(out.stdout.strip(), "done", out.stderr)

    def test_a_grayscale_model_and_the_helpers(self):
        m = dermal.Model(GRAY_MODEL, lesion_check="off")
        self.assertEqual(m.input["channels"], 1)
        self.assertEqual(m.format, "onnx")
        self.assertEqual(len(m.labels), 7)
        self.assertEqual(len(m.predict(read(IMAGES[0])).probabilities), 7)
        mem = dermal.memory_status()
        self.assertGreater(mem["rss_mb"], 10)
        self.assertGreaterEqual(mem["peak_rss_mb"], mem["rss_mb"])
        self.assertRegex(dermal.__version__, r"^\d+\.\d+\.\d+$")
        self.assertEqual(self.model.name, "skinnet_mnv2_ham_isic224")


if __name__ == "__main__":
    unittest.main()
