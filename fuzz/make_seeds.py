#!/usr/bin/python3
"""Seed corpora for the fuzz targets (fuzz/run.sh runs this), one directory per target, made from
real files: the test images and the HAM10000 images in ../shared (re-encoded small, in the
variants real uploads come in), ONNX's own conformance models, the Keras importer's test models
(written by tools/keras_reference), the bundled model cards, and requests as clients send them.
Deterministic: the same inputs give the same seeds.

  /usr/bin/python3 fuzz/make_seeds.py OUT_DIR [--keras-reference DIR]
"""
import argparse
import base64
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ONNX_NODE_TESTS = Path("/usr/share/libonnx-testdata/data/node")
# ONNX operators of image classifiers: their conformance models are the ONNX reader's seeds.
ONNX_OPS = ("conv", "relu", "add", "mul", "sub", "div", "batchnorm", "maxpool", "averagepool", "globalaveragepool",
            "globalmaxpool", "gemm", "matmul", "softmax", "flatten", "reshape", "concat", "transpose", "clip", "sigmoid",
            "pad", "resize", "hardswish", "hardsigmoid", "leakyrelu", "prelu", "squeeze", "unsqueeze", "identity",
            "dropout", "reducemean", "shape", "gather", "constant", "sum", "tanh", "elu", "selu")


def write(d, name, data):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def encoded(img, fmt, **kw):
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def exif_block(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def images(out):
    sources = [Image.open(p).convert("RGB") for p in sorted((ROOT / "tests/data/vision").glob("ISIC_*.png"))[:2]]
    ham = sorted((SHARED / "data/ham10000").rglob("*.jpg"))[:2]
    sources += [Image.open(p).convert("RGB") for p in ham]
    small = [im.resize((24, 18)) for im in sources] + [sources[0].resize((9, 13))]
    jpeg, png, webp = out / "jpeg", out / "png", out / "webp"
    for i, im in enumerate(small):
        write(jpeg, f"baseline_{i}.jpg", encoded(im, "JPEG", quality=80))
        write(jpeg, f"progressive_{i}.jpg", encoded(im, "JPEG", quality=70, progressive=True))
        write(jpeg, f"gray_{i}.jpg", encoded(im.convert("L"), "JPEG"))
        write(jpeg, f"cmyk_{i}.jpg", encoded(im.convert("CMYK"), "JPEG"))
        write(jpeg, f"subsampled_{i}.jpg", encoded(im, "JPEG", subsampling=2))
        write(png, f"rgb_{i}.png", encoded(im, "PNG"))
        write(png, f"rgba_{i}.png", encoded(im.convert("RGBA"), "PNG"))
        write(png, f"palette_{i}.png", encoded(im.convert("P"), "PNG"))
        write(png, f"gray_{i}.png", encoded(im.convert("L"), "PNG"))
        write(png, f"gray16_{i}.png", encoded(im.convert("L").convert("I;16"), "PNG"))
        write(png, f"gray_alpha_{i}.png", encoded(im.convert("LA"), "PNG"))
        write(webp, f"lossy_{i}.webp", encoded(im, "WEBP", quality=60))
        write(webp, f"lossless_{i}.webp", encoded(im, "WEBP", lossless=True))
        write(webp, f"alpha_{i}.webp", encoded(im.convert("RGBA"), "WEBP"))
    for o in (1, 3, 6, 8):
        write(jpeg, f"exif{o}.jpg", encoded(small[0], "JPEG", exif=exif_block(o)))
        write(png, f"exif{o}.png", encoded(small[0], "PNG", exif=exif_block(o)))
        write(webp, f"exif{o}.webp", encoded(small[0], "WEBP", exif=exif_block(o)))
    write(jpeg, "exif6_test.jpg", (ROOT / "tests/data/vision/exif6.jpg").read_bytes())
    frames = [small[0], small[1]]
    write(webp, "animated.webp", encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
    write(png, "animated.png", encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]))
    # The EXIF reader takes the TIFF block, with and without the "Exif\0\0" prefix.
    for o in range(1, 9):
        write(out / "exif", f"orientation{o}.tiff", exif_block(o))
        write(out / "exif", f"orientation{o}.app1", b"Exif\0\0" + exif_block(o))
    # Big-endian ("MM"): one IFD entry, orientation 6.
    write(out / "exif", "motorola.tiff", b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0")


def tiny_cnn(external=False):
    """Conv + BatchNorm + Relu + GlobalAveragePool + Flatten + Gemm + Softmax, what the load
    passes fold and search (the BatchNorm folds into the Conv, the logits are the Gemm's)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    inits = [w,
             numpy_helper.from_array(np.zeros(4, np.float32), "b"),
             numpy_helper.from_array(np.ones(4, np.float32), "scale"),
             numpy_helper.from_array(np.zeros(4, np.float32), "bias"),
             numpy_helper.from_array(np.zeros(4, np.float32), "mean"),
             numpy_helper.from_array(np.ones(4, np.float32), "var"),
             numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "fc_w"),
             numpy_helper.from_array(np.zeros(3, np.float32), "fc_b")]
    if external:  # the fuzz target's model directory holds weights.bin (4 KiB)
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", str(4 * 3 * 3 * 3 * 4))):
            w.external_data.add(key=k, value=v)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="dermal-fuzz")
    helper.set_model_props(model, {"dermal_card": json.dumps({"labels": ["a", "b", "c"]})})
    return model.SerializeToString()


def onnx_models(out):
    d = out / "onnx"
    write(d, "tiny_cnn.onnx", tiny_cnn())
    write(d, "tiny_cnn_external.onnx", tiny_cnn(external=True))
    for test in sorted(ONNX_NODE_TESTS.iterdir()) if ONNX_NODE_TESTS.is_dir() else []:
        op = test.name[len("test_"):].split("_")[0]
        model = test / "model.onnx"
        if op in ONNX_OPS and model.is_file() and model.stat().st_size < 8192:
            write(d, test.name + ".onnx", model.read_bytes())


def keras_models(out, reference):
    base, files = reference, []
    if reference and reference.is_dir():
        files = sorted(p for p in reference.rglob("*") if p.suffix in (".keras", ".h5") and p.stat().st_size < 64 << 10)
    if not files:  # without the importer's test models: the two real files in ../shared
        base = SHARED / "models/keras_real"
        files = sorted(base.glob("*"))
    for p in files:
        data = p.read_bytes()
        name = str(p.relative_to(base)).replace("/", "_")
        target = "keras_zip" if data.startswith(b"PK") else "keras_h5"
        write(out / target, name, data)
        if target == "keras_zip":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "config.json" in z.namelist():
                    write(out / "keras_config", name + ".json", z.read("config.json"))
    # keras_config's weights: the smallest Keras 3 zip (fuzz/run.sh passes it on).
    zips = sorted((out / "keras_zip").glob("*"), key=lambda p: (p.stat().st_size, p.name))
    if zips:
        (out / "keras_config_weights.keras").write_bytes(zips[0].read_bytes())
        with zipfile.ZipFile(zips[0]) as z:
            write(out / "keras_config", "weights_model.json", z.read("config.json"))


def tfjs_models(out, reference):
    """TF.js model.json seeds from the importer's reference models (float32 and quantised), each
    shard renamed <model>.<variant>.<shard> into tfjs_shards/ and the seed's paths rewritten to
    match, so that seeds of different models do not claim the same shard name."""
    if not (reference and reference.is_dir()):
        return
    for model_json in sorted(reference.glob("*/tfjs*/model.json")):
        variant = model_json.parent
        shards = [p for p in variant.glob("*.bin") if p.name != "decoded.bin"]
        if sum(p.stat().st_size for p in shards) > 256 << 10:
            continue
        prefix = "%s.%s." % (variant.parent.name, variant.name)
        m = json.loads(model_json.read_text())
        for group in m.get("weightsManifest", []):
            group["paths"] = [prefix + p for p in group["paths"]]
        for p in shards:
            write(out / "tfjs_shards", prefix + p.name, p.read_bytes())
        write(out / "tfjs_model", prefix + "model.json", json.dumps(m).encode())


def cards(out):
    for p in sorted(list((ROOT / "models").glob("*.json")) + list((ROOT / "tests/data/cards").glob("*.json"))):
        write(out / "model_card", p.name, p.read_bytes())
    write(out / "model_card", "minimal.json", b'{"labels": ["a", "b", "c", "d", "e", "f", "g"]}')


def requests(out):
    png = encoded(Image.new("RGB", (4, 3), (200, 120, 90)), "PNG")
    b64 = base64.b64encode(png).decode()
    oip_fp32 = json.dumps({"id": "r1", "inputs": [{"name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32",
                                                   "data": [[[0.1, 0.2], [0.3, 0.4]]] * 3}],
                           "outputs": [{"name": "probabilities"}]}).encode()
    oip_bytes = json.dumps({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64, b64[:-2]]}]}).encode()
    write(out / "oip_infer", "fp32.json", oip_fp32)
    write(out / "oip_infer", "bytes.json", oip_bytes)
    write(out / "oip_infer", "flat.json", b'{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4e38]}]}')

    def form(parts, boundary="dermalfuzz"):
        body = b""
        for name, filename, ctype, data in parts:
            disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
            body += (f"Content-Type: {ctype}\r\n" if ctype else "").encode() + b"\r\n" + data + b"\r\n"
        return body + f"--{boundary}--\r\n".encode()

    bodies = {"image.form": form([("image", "lesion.png", "image/png", png)]),
              "two_fields.form": form([("note", None, None, b"left arm"), ("image", "a.jpg", "image/jpeg", png)]),
              "no_image.form": form([("file", "x.png", "image/png", png)]),
              "empty_image.form": form([("image", "e.png", "image/png", b"")])}
    for name, body in bodies.items():
        write(out / "multipart", name, body)

    def request(method, target, headers=(), body=b""):
        head = f"{method} {target} HTTP/1.1\r\nHost: dermal\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    mp = "multipart/form-data; boundary=dermalfuzz"
    reqs = {"health.http": request("GET", "/health?verbose=1"),
            "predict_raw.http": request("POST", "/api/predict?gradcam=1&method=gradcampp&class=mel&top_k=3",
                                        [("Content-Type", "image/png")], png),
            "predict_form.http": request("POST", "/api/predict?cam=1&alpha=0.5&colormap=jet", [("Content-Type", mp)],
                                         bodies["image.form"]),
            "explain_form.http": request("POST", "/api/explain?overlay_format=png&display_size=256&layer=auto",
                                         [("Content-Type", mp), ("Expect", "100-continue")], bodies["two_fields.form"]),
            "infer.http": request("POST", "/v2/models/skinnet/infer", [("Content-Type", "application/json")], oip_bytes),
            "infer_version.http": request("POST", "/v2/models/skinnet/versions/1/infer", [], oip_fp32),
            "form_urlencoded.http": request("POST", "/api/predict", [("Content-Type", "application/x-www-form-urlencoded")],
                                            b"image=abc"),
            "pipelined.http": request("GET", "/health") + request("POST", "/api/predict", [], png)}
    for name, data in reqs.items():
        write(out / "http_request", name, data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--keras-reference", type=Path, help="tools/keras_reference/make_test_models.sh's output")
    args = ap.parse_args()
    images(args.out)
    onnx_models(args.out)
    keras_models(args.out, args.keras_reference)
    tfjs_models(args.out, args.keras_reference)
    cards(args.out)
    requests(args.out)
    for d in sorted(p for p in args.out.iterdir() if p.is_dir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
