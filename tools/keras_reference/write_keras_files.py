#!/usr/bin/python3
"""Writes models dumped by make_reference.js as real Keras files, laid out as Keras' own saving
code lays them out (read from keras-team/keras: saving/saving_lib.py, legacy/saving/legacy_h5_format.py):

  model.keras  Keras 3: a zip (stored) of metadata.json, config.json (module/class_name/config,
               inbound nodes as {"args": [keras tensors]}), model.weights.h5 with one group per
               layer, layers/<snake_case class>[_N]/vars/<i>, nested models one level deeper.
  model.h5     Keras 2: root attributes model_config (JSON) and keras_version, group
               model_weights with layer_names and, per layer, weight_names + "<layer>/<var>:0".

With --messy it also writes, per model, the variants seen in real files (see MESSY below).

  /usr/bin/python3 write_keras_files.py DIR [--messy] [--keras-only]   # DIR/<model>/{topology.json,weights.*}
"""
import copy
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np

MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}
MODELS = {"Model", "Functional", "Sequential"}
# Classes of custom_layers.js's helpers. tfjs snake-cases string values when it serializes
# ("RandomFlip" -> "random_flip"), so their keras_class is looked up here.
HELPER_CLASSES = ["Conv2D", "Subtract", "Normalization", "ReLU", "Activation", "GlobalAveragePooling2D",
                  "SpatialDropout2D", "RandomFlip", "Resizing", "CenterCrop", "RandomGrayscale", "RandomRotation",
                  "RandomZoom", "RandomContrast", "RandomTranslation", "RandomColorJitter", "RandAugment"]


def snake_case(name):  # keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def load_dump(d):
    topology = json.loads((d / "topology.json").read_text())
    manifest = json.loads((d / "weights.json").read_text())
    flat = np.fromfile(d / "weights.bin", dtype="<f4")
    weights = {}
    for entry in manifest:
        vs = []
        for v in entry["vars"]:
            n = int(np.prod(v["shape"])) if v["shape"] else 1
            vs.append((v["name"], flat[v["offset"]:v["offset"] + n].reshape(v["shape"]), v.get("trainable", True)))
        weights[tuple(entry["path"])] = vs
    return topology, weights


def layers_of(model):
    return model["config"]["layers"] if isinstance(model["config"], dict) else model["config"]


def keras2_layer(layer):
    """tfjs config -> Keras 2 config: helper layers take their Keras class name."""
    layer = copy.deepcopy(layer)
    cfg = layer["config"]
    if isinstance(cfg, dict) and "keras_class" in cfg:
        wanted = cfg.pop("keras_class")
        layer["class_name"] = next(c for c in HELPER_CLASSES if wanted in (c, snake_case(c)))
        cfg.update(cfg.pop("keras_config", {}))
    if layer["class_name"] == "DepthwiseConv2D":  # Keras 2 inherits Conv2D's "groups" here (1)
        cfg.setdefault("groups", 1)
    if layer["class_name"] in MODELS:
        layer["config"]["layers"] = [keras2_layer(sub) for sub in layer["config"]["layers"]]
    return layer


def keras2_model(topology, model_class="Functional"):
    model = keras2_layer({"class_name": topology["class_name"], "config": topology["config"]})
    if model["class_name"] == "Model":
        model["class_name"] = model_class

    def rename(m):
        for sub in layers_of(m):
            if sub["class_name"] == "Model":
                sub["class_name"] = model_class
            if sub["class_name"] in MODELS:
                rename(sub)
    rename(model)
    return model


def keras_tensor(ref):
    return {"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32", "keras_history": ref[:3]}}


def keras3_layer(layer, counters):
    """Keras 2 layer config -> Keras 3 (serialize_keras_object form)."""
    cls = layer["class_name"]
    cfg = copy.deepcopy(layer["config"])
    if cls in MODELS:
        out = keras3_model({"class_name": cls, "config": cfg}, counters)
        out["name"] = cfg["name"]
    else:
        if cls == "InputLayer":
            cfg["batch_shape"] = cfg.pop("batch_input_shape")
            cfg.pop("ragged", None)
        if cls == "LeakyReLU" and "alpha" in cfg:
            cfg["negative_slope"] = cfg.pop("alpha")
        cfg.pop("batch_input_shape", None)
        cfg["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
        out = {"module": "keras.layers", "class_name": cls, "config": cfg, "registered_name": None, "name": cfg.get("name")}
    if "inbound_nodes" in layer:
        nodes = []
        for node in layer["inbound_nodes"]:
            tensors = [keras_tensor(r) for r in node]
            args = [tensors] if len(tensors) > 1 or cls in MERGE else tensors
            nodes.append({"args": args, "kwargs": {}})
        out["inbound_nodes"] = nodes
    return out


def keras3_model(model, counters):
    cls = "Functional" if model["class_name"] in ("Model", "Functional") else "Sequential"
    cfg = copy.deepcopy(model["config"])
    layers = layers_of(model)
    new_layers = []
    if cls == "Sequential" and layers and layers[0]["class_name"] != "InputLayer":
        first = layers[0]["config"].get("batch_input_shape")
        if first is not None:  # Keras 3 Sequentials start with their InputLayer
            n = counters["input_layer"] = counters.get("input_layer", -1) + 1
            new_layers.append({"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                               "config": {"batch_shape": first, "dtype": "float32", "sparse": False,
                                          "name": "input_layer" + (f"_{n}" if n else "")}})
    new_layers += [keras3_layer(sub, counters) for sub in layers]
    cfg = {"name": cfg["name"], "trainable": True, "layers": new_layers}
    if cls == "Functional":
        cfg["input_layers"] = model["config"]["input_layers"]
        cfg["output_layers"] = model["config"]["output_layers"]
    return {"module": "keras.src.models." + cls.lower(), "class_name": cls, "config": cfg,
            "registered_name": cls if cls == "Functional" else None}


def keras3_weights_h5(model, weights, flat_backslash=False, name_attrs=True):
    """model.weights.h5 bytes: layers/<key>/vars/<i> (keys per container, in config order)."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")

        def walk(m, key_path, name_path):
            used = {}
            for layer in layers_of(m):
                key = snake_case(layer["class_name"])
                if key in used:
                    used[key] += 1
                    key = f"{key}_{used[key]}"
                else:
                    used[key] = 0
                name = layer["config"]["name"]
                kp = key_path + ["layers", key]
                if layer["class_name"] in MODELS:
                    walk(layer, kp, name_path + [name])
                    continue
                group = ("\\".join(kp) if flat_backslash else "/".join(kp)) + "/vars"
                g = f.create_group(group)
                if name_attrs:
                    g.attrs["name"] = name
                for i, (_, value, _) in enumerate(weights.get(tuple(name_path + [name]), [])):
                    g.create_dataset(str(i), data=value)
        walk(model, [], [])
    return buf.getvalue()


def write_keras(path, model3, weights_h5, version="3.6.0", compress=False):
    meta = {"keras_version": version, "date_saved": "2024-11-22@08:53:37"}
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("metadata.json", json.dumps(meta))
        z.writestr("config.json", json.dumps(model3))
        z.writestr("model.weights.h5", weights_h5)


def model_weight_list(layer, weights, prefix):
    """A nested model's variables in Keras 2's model.weights order: trainable, then the rest."""
    out = []
    for sub in layers_of(layer):
        if sub["class_name"] in MODELS:
            out += model_weight_list(sub, weights, prefix + [sub["config"]["name"]])
        else:
            name = sub["config"]["name"]
            out += [(name, v, value, t) for v, value, t in weights.get(tuple(prefix + [name]), [])]
    return [w for w in out if w[3]] + [w for w in out if not w[3]]


def write_h5(path, model2, weights, version="2.4.0", chunks=1, keras3_names=False, config_override=None):
    with h5py.File(path, "w") as f:
        config = json.dumps(config_override or model2)
        f.attrs["model_config"] = config if keras3_names else config.encode("utf8")
        f.attrs["keras_version"] = version.encode("utf8")
        f.attrs["backend"] = b"tensorflow"
        g = f.create_group("model_weights")
        names = [layer["config"]["name"] for layer in layers_of(model2)]
        encoded = np.array([n.encode("utf8") for n in names])
        if chunks == 1:
            g.attrs["layer_names"] = encoded
        else:  # what Keras does when the list outgrows HDF5's 64 KiB attribute limit
            for i, part in enumerate(np.array_split(encoded, chunks)):
                g.attrs[f"layer_names{i}"] = part
        g.attrs["keras_version"] = version.encode("utf8")
        g.attrs["backend"] = b"tensorflow"
        model_name = model2["config"]["name"]
        for layer in layers_of(model2):
            name = layer["config"]["name"]
            lg = g.create_group(name)
            if layer["class_name"] in MODELS:
                entries = model_weight_list(layer, weights, [name])
                prefix = name + "/"
            else:
                entries = [(name, v, value, t) for v, value, t in weights.get((name,), [])]
                prefix = ""
            paths = []
            for owner, var, value, _ in entries:
                p = f"{model_name}/{prefix}{owner}/{var}" if keras3_names else f"{owner}/{var}:0"
                lg.create_dataset(p, data=value)
                paths.append(p.encode("utf8"))
            lg.attrs["weight_names"] = np.array(paths) if paths else np.zeros((0,), dtype="float64")


def refusal_configs(model2):
    """Copies of the model with one layer replaced: a pickled Lambda, a custom class, an unknown one."""
    def replace(cls, extra):
        m = copy.deepcopy(model2)
        target = next(l for l in layers_of(m) if l["class_name"] in ("Dropout", "GaussianNoise", "Activation"))
        target["class_name"] = cls
        target["config"].update(extra)
        return m, target["config"]["name"]
    lam = replace("Lambda", {"function": ["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkAKQHaAXhyAgAAAHICAAAA+h48aXB5dGhvbi1pbnB1dC0xLWEzYmE0ZDU0YjQ5ZT7aCDxsYW1iZGE+AQAAAPMAAAAA\n", None, None],
                           "function_type": "lambda", "module": "__main__", "output_shape": None, "arguments": {}})
    custom = replace("SwishPlus", {})
    custom[0]["config"]["layers"] = [dict(l, module="my_layers", registered_name="Custom>SwishPlus")
                                     if l["config"]["name"] == custom[1] else l for l in layers_of(custom[0])]
    unknown = replace("ConvLSTM2D", {})
    return {"lambda": lam, "custom": custom, "unknown": unknown}


def write_model(d, messy, keras_only=False):
    topology, weights = load_dump(d)
    model2 = keras2_model(topology)
    model3 = keras3_model(model2, {})
    write_keras(d / "model.keras", model3, keras3_weights_h5(model3, weights))
    if keras_only:
        return
    write_h5(d / "model.h5", model2, weights)
    if not messy:
        return
    m = d / "messy"
    m.mkdir(exist_ok=True)
    # tf.keras 2.15 on Windows: .keras zips whose weight groups are flat names with backslashes.
    tf215 = json.loads(json.dumps(model3))
    write_keras(m / "tf215_backslash.keras", tf215, keras3_weights_h5(model3, weights, flat_backslash=True, name_attrs=False),
                version="2.15.0")
    (m / "really_hdf5.keras").write_bytes((d / "model.h5").read_bytes())
    write_keras(m / "compressed.keras", model3, keras3_weights_h5(model3, weights), compress=True)
    write_h5(m / "model_class.h5", keras2_model(topology, model_class="Model"), weights, version="2.2.4")
    write_h5(m / "chunked_names.h5", model2, weights, chunks=3)
    write_h5(m / "keras3_legacy.h5", model2, weights, version="3.6.0", keras3_names=True, config_override=model3)
    if not any(l["class_name"] in ("Dropout", "GaussianNoise", "Activation") for l in layers_of(model2)):
        return
    for kind, (cfg, layer) in refusal_configs(model2).items():
        write_h5(m / f"refuse_{kind}.h5", cfg, weights)
        (m / f"refuse_{kind}.txt").write_text(f"{layer}\n{layers_of(cfg)[[l['config']['name'] for l in layers_of(cfg)].index(layer)]['class_name']}\n")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    messy = "--messy" in sys.argv
    root = Path(args[0])
    dirs = [root] if (root / "topology.json").exists() else sorted(p for p in root.iterdir() if (p / "topology.json").exists())
    for d in dirs:
        write_model(d, messy, keras_only="--keras-only" in sys.argv)
        print(f"{d.name}: {', '.join(sorted(p.name for p in d.glob('model.*')))}")


if __name__ == "__main__":
    main()
