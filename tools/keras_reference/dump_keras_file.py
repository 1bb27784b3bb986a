#!/usr/bin/python3
"""Dumps a real Keras file (a Sequential of built-in layers) into what make_reference.js
--from-dump reads: tfjs_topology.json (the config in the Keras 2 form TensorFlow.js loads) and
weights.json + weights.bin (each layer's variables, found the way Keras itself finds them).

  /usr/bin/python3 dump_keras_file.py MODEL.keras|MODEL.h5 OUTDIR
  node make_reference.js --from-dump OUTDIR      # writes OUTDIR/reference.json

This is how tests/data/keras/small_cnn_28_*_reference.json were made (see make_real_reference.sh).
"""
import io
import json
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np

DROP = {"dtype", "registered_name", "module", "build_config", "groups"}


def tfjs_sequential(config):
    """Keras 2 or 3 Sequential config -> the form tfjs' modelFromJSON takes."""
    layers = []
    batch_shape = None
    for layer in config["config"]["layers"]:
        cfg = {k: v for k, v in layer["config"].items() if k not in DROP}
        if layer["class_name"] == "InputLayer":
            batch_shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            continue
        if batch_shape is not None and not layers:
            cfg["batch_input_shape"] = batch_shape
        layers.append({"class_name": layer["class_name"], "config": cfg})
    return {"modelTopology": {"class_name": "Sequential", "config": {"name": config["config"]["name"], "layers": layers}}}


def keras3(path):
    z = zipfile.ZipFile(path)
    config = json.loads(z.read("config.json"))
    f = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    weights = {}
    for key, group in f["layers"].items():  # Keras 3.6 records each layer's name on its vars group
        v = group["vars"]
        if len(v):
            weights[v.attrs["name"]] = [np.asarray(v[str(i)]) for i in range(len(v))]
    return config, weights


def keras2(path):
    f = h5py.File(path, "r")
    config = json.loads(f.attrs["model_config"])
    g = f["model_weights"]
    weights = {}
    for name in g.attrs["layer_names"]:
        name = name.decode()
        names = [n.decode() for n in g[name].attrs["weight_names"]]
        if names:
            weights[name] = [np.asarray(g[name][n]) for n in names]
    return config, weights


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    config, weights = keras3(src) if zipfile.is_zipfile(src) else keras2(src)
    (out / "tfjs_topology.json").write_text(json.dumps(tfjs_sequential(config)))
    manifest, chunks, offset = [], [], 0
    for name, values in weights.items():
        vars_ = []
        for i, v in enumerate(values):
            v = v.astype("<f4")
            vars_.append({"name": str(i), "shape": list(v.shape), "offset": offset})
            chunks.append(v.tobytes())
            offset += v.size
        manifest.append({"path": [name], "vars": vars_})
    (out / "weights.json").write_text(json.dumps(manifest, indent=1))
    (out / "weights.bin").write_bytes(b"".join(chunks))


if __name__ == "__main__":
    main()
