"""A small ONNX interpreter written on torch / torch.nn.functional.

It exists to give the C++ engine an *independent* reference: nothing here shares code, kernels or
conventions with Dermal. Every ONNX node is mapped to one short function calling PyTorch, so
autograd differentiates the whole graph and `torch.autograd.grad(logit, kept_tensor)` gives the
Grad-CAM gradients.

    import onnx, torch, onnx_torch
    model = onnx.load("resnet18_ham192.onnx")
    net = onnx_torch.Interpreter(model, dtype=torch.float64)
    out = net.run({"input": x}, keep=["/layer4/layer4.1/relu_1/Relu_output_0"])
    act = out["/layer4/layer4.1/relu_1/Relu_output_0"]
    (grad,) = torch.autograd.grad(out["logits"][:, 4].sum(), [act])

    # or, one shot:
    out = onnx_torch.run(model, {"input": x}, keep=[...], dtype=torch.float64)

Conventions (where PyTorch's choice is the reference's choice):
- Float initializers, Constants and float inputs are converted to `dtype` (float32 by default,
  float64 for a high-precision reference); integer tensors (shape chains) stay int64.
- Nodes are evaluated in file order (ONNX requires a topologically sorted graph).
- Kept tensors that do not already require grad are made autograd leaves when grad mode is on,
  so gradients with respect to them work without asking for gradients of the input or weights
  (and the backward pass stops there, which keeps it cheap).
- Gradient conventions are PyTorch's: Relu passes no gradient at exactly 0, Clip passes gradient
  for min < x < max (strict, as hardtanh / ReLU6, the modules that export to Clip), MaxPool sends
  a tied window's gradient to its first maximum.
- An op (or an attribute value) that is not supported raises UnsupportedOpError when the
  Interpreter is built, naming the node, the op and the opset.
"""

import math

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper


class UnsupportedOpError(NotImplementedError):
    """An ONNX node this interpreter cannot evaluate."""


class OnnxRuntimeError(RuntimeError):
    """A node failed while running; the message names the node and its input shapes."""


# ONNX TensorProto data types that are floating point, and the torch dtype of the others.
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16}
_INT_TYPES = {onnx.TensorProto.INT8: torch.int64, onnx.TensorProto.INT16: torch.int64,
              onnx.TensorProto.INT32: torch.int64, onnx.TensorProto.INT64: torch.int64,
              onnx.TensorProto.UINT8: torch.int64, onnx.TensorProto.BOOL: torch.bool}


def _to_torch(proto, dtype):
    """TensorProto -> torch tensor: floats become `dtype`, integers int64, bools bool."""
    arr = numpy_helper.to_array(proto)
    t = torch.from_numpy(np.array(arr, copy=True))
    if t.is_floating_point():
        return t.to(dtype)
    if t.dtype == torch.bool:
        return t
    return t.to(torch.int64)


def _ints(t):
    """A 1-D integer tensor (or None) -> list of Python ints."""
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _scalar(t):
    return None if t is None else t.reshape(-1)[0].item()


# --------------------------------------------------------------------------------------------
# Padding helpers shared by Conv and the pools.

def _spatial_pads(a, x, kernel, strides, dilations):
    """Resolve ONNX `pads` / `auto_pad` into (begins, ends) lists over the spatial dims."""
    n = len(kernel)
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        pads = list(a.get("pads", [0] * (2 * n)))
        return pads[:n], pads[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else big)
            ends.append(big if auto_pad == "SAME_UPPER" else small)
        return begins, ends
    raise UnsupportedOpError("auto_pad=%s" % auto_pad)


def _torch_pad_list(begins, ends):
    """ONNX per-dim (begins, ends), first dim first -> F.pad's list, last dim first."""
    out = []
    for b, e in zip(reversed(begins), reversed(ends)):
        out += [b, e]
    return out


def _pool_setup(a, x):
    kernel = list(a["kernel_shape"])
    n = len(kernel)
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    begins, ends = _spatial_pads(a, x, kernel, strides, dilations)
    return kernel, strides, dilations, begins, ends


def _by_rank(fns, x, what):
    r = x.dim() - 2
    if r not in fns:
        raise OnnxRuntimeError("%s on a rank-%d input is not supported" % (what, x.dim()))
    return fns[r]


# --------------------------------------------------------------------------------------------
# One function per op. Signature: (ctx, inputs, attrs) -> tensor or tuple of tensors.
# `inputs` holds None for omitted optional inputs; `ctx` gives dtype and opset.

def op_conv(ctx, i, a):
    x, w, b = i[0], i[1], (i[2] if len(i) > 2 else None)
    kernel = list(a.get("kernel_shape", w.shape[2:]))
    n = len(kernel)
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    begins, ends = _spatial_pads(a, x, kernel, strides, dilations)
    if begins != ends:  # asymmetric: pad explicitly with zeros
        x = F.pad(x, _torch_pad_list(begins, ends))
        begins = [0] * n
    conv = _by_rank({1: F.conv1d, 2: F.conv2d, 3: F.conv3d}, x, "Conv")
    return conv(x, w, b, stride=strides, padding=begins, dilation=dilations,
                groups=a.get("group", 1))


def op_max_pool(ctx, i, a):
    x = i[0]
    kernel, strides, dilations, begins, ends = _pool_setup(a, x)
    if a.get("storage_order", 0) != 0:
        raise UnsupportedOpError("MaxPool storage_order=1")
    small = all(b <= k // 2 for b, k in zip(begins, kernel))
    if begins != ends or not small:
        x = F.pad(x, _torch_pad_list(begins, ends), value=-math.inf)
        begins = [0] * len(kernel)
    pool = _by_rank({1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}, x, "MaxPool")
    return pool(x, kernel, strides, begins, dilations, ceil_mode=bool(a.get("ceil_mode", 0)))


def op_average_pool(ctx, i, a):
    x = i[0]
    kernel, strides, dilations, begins, ends = _pool_setup(a, x)
    if any(d != 1 for d in dilations):
        raise UnsupportedOpError("AveragePool with dilations")
    ceil = bool(a.get("ceil_mode", 0))
    include = bool(a.get("count_include_pad", 0))
    pool = _by_rank({1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}, x, "AveragePool")
    small = all(b <= k // 2 for b, k in zip(begins, kernel))
    if begins == ends and small:
        return pool(x, kernel, strides, begins, ceil_mode=ceil, count_include_pad=include)
    # Asymmetric pads: average of zero-padded input, divided by the share of real pixels when
    # padding must not count.
    pads = _torch_pad_list(begins, ends)
    zeros = [0] * len(kernel)
    y = pool(F.pad(x, pads), kernel, strides, zeros, ceil_mode=ceil, count_include_pad=True)
    if include:
        return y
    ones = F.pad(torch.ones_like(x[:1, :1]), pads)
    return y / pool(ones, kernel, strides, zeros, ceil_mode=ceil, count_include_pad=True)


def op_global_average_pool(ctx, i, a):
    return i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True)


def op_global_max_pool(ctx, i, a):
    return i[0].amax(dim=tuple(range(2, i[0].dim())), keepdim=True)


def op_batch_normalization(ctx, i, a):
    if a.get("training_mode", 0):
        raise UnsupportedOpError("BatchNormalization training_mode=1")
    x, scale, bias, mean, var = i[:5]
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=a.get("epsilon", 1e-5))


def op_gemm(ctx, i, a):
    A, B = i[0], i[1]
    C = i[2] if len(i) > 2 else None
    if a.get("transA", 0):
        A = A.t()
    if a.get("transB", 0):
        B = B.t()
    y = a.get("alpha", 1.0) * (A @ B)
    if C is not None:
        y = y + a.get("beta", 1.0) * C
    return y


def op_clip(ctx, i, a):
    if ctx.opset < 11:
        lo, hi = a.get("min", None), a.get("max", None)
    else:
        lo = _scalar(i[1]) if len(i) > 1 else None
        hi = _scalar(i[2]) if len(i) > 2 else None
    # hardtanh, not clamp: ReLU6 exports as Clip, and its gradient stops at the bounds themselves.
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    return torch.nn.functional.hardtanh(i[0], min_val=lo, max_val=hi)


def op_flatten(ctx, i, a):
    x = i[0]
    axis = a.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))


def _softmax_like(fn):
    def op(ctx, i, a):
        x = i[0]
        if ctx.opset >= 13:
            return fn(x, dim=a.get("axis", -1))
        axis = a.get("axis", 1) % x.dim()  # opset < 13: flatten to 2-D at axis
        return fn(x.reshape(int(np.prod(x.shape[:axis])), -1), dim=1).reshape(x.shape)
    return op


def _axes_from(ctx, i, a, index, opset_of_input):
    if ctx.opset >= opset_of_input:
        return _ints(i[index]) if len(i) > index else None
    return list(a["axes"]) if "axes" in a else None


def op_unsqueeze(ctx, i, a):
    x = i[0]
    axes = _axes_from(ctx, i, a, 1, 13)
    rank = x.dim() + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        x = x.unsqueeze(ax)
    return x


def op_squeeze(ctx, i, a):
    x = i[0]
    axes = _axes_from(ctx, i, a, 1, 13)
    if axes is None:
        return x.squeeze()
    for ax in sorted((ax % x.dim() for ax in axes), reverse=True):
        if x.shape[ax] != 1:
            raise OnnxRuntimeError("Squeeze axis %d has size %d" % (ax, x.shape[ax]))
        x = x.squeeze(ax)
    return x


def op_reshape(ctx, i, a):
    x, shape = i[0], _ints(i[1])
    if not a.get("allowzero", 0):
        shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
    return x.reshape(shape)


def op_shape(ctx, i, a):
    dims = list(i[0].shape)
    start, end = a.get("start", 0), a.get("end", len(dims))
    return torch.tensor(dims[start:end], dtype=torch.int64)


def op_gather(ctx, i, a):
    x, idx = i[0], i[1]
    axis = a.get("axis", 0) % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    y = x.index_select(axis, idx.reshape(-1))
    return y.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:]))


def op_concat(ctx, i, a):
    return torch.cat([t for t in i if t is not None], dim=a["axis"])


def op_transpose(ctx, i, a):
    perm = a.get("perm", list(reversed(range(i[0].dim()))))
    return i[0].permute(*perm)


def op_pad(ctx, i, a):
    x = i[0]
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if ctx.opset >= 11:
        pads = _ints(i[1])
        value = _scalar(i[2]) if len(i) > 2 and i[2] is not None else 0.0
        axes = _ints(i[3]) if len(i) > 3 and i[3] is not None else list(range(x.dim()))
    else:
        pads, value, axes = list(a["pads"]), a.get("value", 0.0), list(range(x.dim()))
    n = len(axes)
    begins, ends = [0] * x.dim(), [0] * x.dim()
    for k, ax in enumerate(axes):
        begins[ax % x.dim()], ends[ax % x.dim()] = pads[k], pads[n + k]
    if mode == "constant":
        return F.pad(x, _torch_pad_list(begins, ends), mode="constant", value=value)
    torch_mode = {"reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise UnsupportedOpError("Pad mode=%s" % mode)
    if any(begins[:2]) or any(ends[:2]) or x.dim() not in (3, 4, 5):
        raise OnnxRuntimeError("Pad mode=%s only pads the spatial dims of 3-5-D tensors" % mode)
    return F.pad(x, _torch_pad_list(begins[2:], ends[2:]), mode=torch_mode)


def op_constant(ctx, i, a):
    if "value" in a:
        return _to_torch(a["value"], ctx.dtype)
    if "value_float" in a:
        return torch.tensor(a["value_float"], dtype=ctx.dtype)
    if "value_floats" in a:
        return torch.tensor(list(a["value_floats"]), dtype=ctx.dtype)
    if "value_int" in a:
        return torch.tensor(a["value_int"], dtype=torch.int64)
    if "value_ints" in a:
        return torch.tensor(list(a["value_ints"]), dtype=torch.int64)
    raise UnsupportedOpError("Constant with attributes %s" % sorted(a))


def op_constant_of_shape(ctx, i, a):
    value = _to_torch(a["value"], ctx.dtype) if "value" in a else torch.zeros(1, dtype=ctx.dtype)
    return value.reshape(-1)[0].expand(*_ints(i[0])).clone()


def op_cast(ctx, i, a):
    to = a["to"]
    if to in _FLOAT_TYPES:
        return i[0].to(ctx.dtype)
    if to in _INT_TYPES:
        return i[0].to(_INT_TYPES[to])
    raise UnsupportedOpError("Cast to type %d" % to)


def op_reduce_mean(ctx, i, a):
    x = i[0]
    axes = _axes_from(ctx, i, a, 1, 18)
    axes = list(range(x.dim())) if not axes else axes
    return x.mean(dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))


def op_div(ctx, i, a):
    x, y = i
    if x.is_floating_point() or y.is_floating_point():
        return x / y
    return torch.div(x, y, rounding_mode="trunc")


def op_dropout(ctx, i, a):
    return i[0]  # inference: identity (a requested mask output is rejected at load)


def _variadic(fn):
    def op(ctx, i, a):
        y = i[0]
        for t in i[1:]:
            y = fn(y, t)
        return y
    return op


def _unary(fn):
    return lambda ctx, i, a: fn(i[0])


OPS = {
    "Conv": op_conv,
    "MaxPool": op_max_pool,
    "AveragePool": op_average_pool,
    "GlobalAveragePool": op_global_average_pool,
    "GlobalMaxPool": op_global_max_pool,
    "BatchNormalization": op_batch_normalization,
    "Gemm": op_gemm,
    "MatMul": lambda ctx, i, a: torch.matmul(i[0], i[1]),
    "Relu": _unary(F.relu),
    "Clip": op_clip,
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "LeakyRelu": lambda ctx, i, a: F.leaky_relu(i[0], a.get("alpha", 0.01)),
    "HardSigmoid": lambda ctx, i, a: torch.clamp(a.get("alpha", 0.2) * i[0]
                                                 + a.get("beta", 0.5), 0.0, 1.0),
    "HardSwish": _unary(F.hardswish),
    "Erf": _unary(torch.erf),
    "Exp": _unary(torch.exp),
    "Log": _unary(torch.log),
    "Sqrt": _unary(torch.sqrt),
    "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs),
    "Identity": _unary(lambda x: x),
    "Dropout": op_dropout,
    "Softmax": _softmax_like(F.softmax),
    "LogSoftmax": _softmax_like(F.log_softmax),
    "Add": lambda ctx, i, a: i[0] + i[1],
    "Sub": lambda ctx, i, a: i[0] - i[1],
    "Mul": lambda ctx, i, a: i[0] * i[1],
    "Div": op_div,
    "Pow": lambda ctx, i, a: torch.pow(i[0], i[1]),
    "Sum": _variadic(torch.add),
    "Max": _variadic(torch.maximum),
    "Min": _variadic(torch.minimum),
    "Flatten": op_flatten,
    "Reshape": op_reshape,
    "Shape": op_shape,
    "Gather": op_gather,
    "Unsqueeze": op_unsqueeze,
    "Squeeze": op_squeeze,
    "Concat": op_concat,
    "Transpose": op_transpose,
    "Pad": op_pad,
    "Constant": op_constant,
    "ConstantOfShape": op_constant_of_shape,
    "Cast": op_cast,
    "ReduceMean": op_reduce_mean,
}

# Ops whose extra outputs (beyond the first) are not computed; asking for them is an error.
_SINGLE_OUTPUT = {"MaxPool", "Dropout", "BatchNormalization"}


class Interpreter:
    """An ONNX model prepared for repeated runs: initializers converted once to `dtype`."""

    def __init__(self, model, dtype=torch.float32):
        if isinstance(model, str):
            model = onnx.load(model)
        self.model = model
        self.dtype = dtype
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          None)
        if self.opset is None:
            raise UnsupportedOpError("the model imports no default-domain (ai.onnx) opset")
        g = model.graph
        self.initializers = {t.name: _to_torch(t, dtype) for t in g.initializer}
        self.input_names = [v.name for v in g.input if v.name not in self.initializers]
        self.output_names = [v.name for v in g.output]
        self.nodes = []
        for k, node in enumerate(g.node):
            where = "node %d '%s' (%s, opset %d)" % (k, node.name, node.op_type, self.opset)
            if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
                raise UnsupportedOpError("unsupported op in %s%s" % (
                    where, ", domain '%s'" % node.domain if node.domain else ""))
            if node.op_type in _SINGLE_OUTPUT and any(o for o in node.output[1:]):
                raise UnsupportedOpError("%s: only the first output is supported" % where)
            attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
            self.nodes.append((node, attrs, where))
        # The last node reading each tensor, so intermediates can be dropped early.
        self.last_use = {}
        for k, (node, _, _) in enumerate(self.nodes):
            for name in node.input:
                self.last_use[name] = k

    def run(self, inputs, keep=(), keep_all=False):
        """Evaluate the graph.

        inputs: {name: tensor} for the graph inputs (float ones are cast to self.dtype).
        keep: names of intermediate tensors to return besides the graph outputs; when grad mode
            is on, each is returned as part of the autograd graph (made a leaf that requires
            grad if it did not already), so torch.autograd.grad(output, kept) works.
        keep_all: return every tensor computed (for inspection; no grad leaves are added).
        Returns {name: tensor} for the outputs and the kept tensors.
        """
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise OnnxRuntimeError("missing graph inputs %s" % missing)
        keep = set(keep)
        produced = {o for node, _, _ in self.nodes for o in node.output}
        unknown = keep - produced - set(self.input_names) - set(self.initializers)
        if unknown:
            raise OnnxRuntimeError("cannot keep unknown tensors %s" % sorted(unknown))
        wanted = keep | set(self.output_names)
        grad = torch.is_grad_enabled()

        env = dict(self.initializers)
        for name, t in inputs.items():
            env[name] = t.to(self.dtype) if t.is_floating_point() else t
        kept = {}

        def mark(name):
            t = env[name]
            if name in keep and grad and t.is_floating_point() and not t.requires_grad:
                t = t.detach().requires_grad_(True)
                env[name] = t
            if keep_all or name in wanted:
                kept[name] = t

        for name in list(env):
            if name in wanted:
                mark(name)
        for k, (node, attrs, where) in enumerate(self.nodes):
            args = [env[n] if n else None for n in node.input]
            while args and args[-1] is None:
                args.pop()
            try:
                result = OPS[node.op_type](self, args, attrs)
            except (UnsupportedOpError, OnnxRuntimeError) as e:
                raise type(e)("%s: %s" % (where, e)) from None
            except Exception as e:  # a torch error: name the node and the shapes
                shapes = [tuple(t.shape) if t is not None else None for t in args]
                raise OnnxRuntimeError("%s failed on inputs %s: %s" % (where, shapes, e)) from e
            results = result if isinstance(result, tuple) else (result,)
            for name, t in zip(node.output, results):
                if name:
                    env[name] = t
                    mark(name)
            for name in node.input:  # free what no later node reads
                if self.last_use.get(name) == k and name not in self.initializers:
                    env.pop(name, None)
        return kept


def run(model, inputs, keep=(), dtype=torch.float32):
    """One-shot: run(model or path, {name: tensor}, keep=[names]) -> {name: tensor}."""
    return Interpreter(model, dtype).run(inputs, keep)
