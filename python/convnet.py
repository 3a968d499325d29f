"""convnet - Python bindings to the convnet library, through ctypes.

No compilation step: this one module loads the shared libraries that `make`
builds (build/libconvnet.so, and build/libconvnet_vis.so for image files) and
trades numpy arrays with them.  It needs Python 3 and numpy.

    import convnet
    model = convnet.Model.load("lenet.safetensors")
    images, labels = convnet.load_data("data/mnist", "test")   # uint8 (N, 1, 28, 28)
    probs = model.predict(images[:5])                          # (5, 10) float32
    print(model.evaluate(images, labels).accuracy)
    print(model.predict_image("digit.png").argmax())

Inputs are NCHW like the library's: 8-bit pixels (uint8) are normalised with
the model's mean and std as the model's [net] section says (the library's
cn_net_forward_pixels); float arrays are taken as the prepared input itself
(cn_net_forward), as Model.prepare() makes it from pixels.

Every failure inside the library raises convnet.Error (ShapeError, also a
ValueError, for data that does not fit the network) with the library's
message (cn_last_error) and the status's name; mistakes caught on the Python
side (a wrong type, rank or shape of an array) raise TypeError or ValueError.

Where the library is found: Model.load(..., library=PATH) or
convnet.load_library(PATH), else $CONVNET_LIB, else build/libconvnet.so in
the repository this file lies in (python/..), else the system's (as `make
install` puts it: libconvnet.so.0).  libconvnet_vis.so is looked for beside
the core library ($CONVNET_VIS_LIB overrides), else on the system.
"""

import ctypes
import ctypes.util
import os
import signal
import threading
from collections import namedtuple

import numpy as np

__all__ = [
    "Error",
    "ShapeError",
    "Model",
    "Layer",
    "Evaluation",
    "Progress",
    "load_library",
    "library_path",
    "load_data",
    "load_idx",
    "read_image",
    "recipe_keys",
    "set_memory_limit",
]

# --------------------------------------------------------------- C types

_size = ctypes.c_size_t
_u64 = ctypes.c_uint64
_status = ctypes.c_int  # cn_status: an enum, an int


class _Shape(ctypes.Structure):
    _fields_ = [("c", _size), ("h", _size), ("w", _size)]


class _Device(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_char_p), ("index", ctypes.c_int), ("threads", ctypes.c_int)]


class _LayerInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("kind", ctypes.c_char_p),
        ("line", ctypes.c_int),
        ("inp", _Shape),
        ("out", _Shape),
        ("params", _size),
        ("macs", _u64),
    ]


class _TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("ndim", ctypes.c_int),
        ("dims", _size * 4),
        ("count", _size),
        ("offset", _size),
        ("trainable", ctypes.c_int),
    ]


class _Data(ctypes.Structure):
    _fields_ = [
        ("n", _size),
        ("shape", _Shape),
        ("classes", _size),
        ("pixels", ctypes.POINTER(ctypes.c_uint8)),
        ("labels", ctypes.POINTER(ctypes.c_int32)),
        ("owned", ctypes.c_int),
        ("names", ctypes.POINTER(ctypes.c_char_p)),
        ("store", ctypes.c_void_p),
    ]


class _Eval(ctypes.Structure):
    _fields_ = [
        ("n", _size),
        ("classes", _size),
        ("loss", ctypes.c_double),
        ("accuracy", ctypes.c_double),
        ("confusion", ctypes.POINTER(_size)),
        ("predicted", ctypes.POINTER(_size)),
        ("probability", ctypes.POINTER(ctypes.c_float)),
    ]


# cn_train_opts; the fields are named after the recipe's keys ([train]'s
# spelling), so that the key table (cn_train_key_at) finds them.
class _TrainOpts(ctypes.Structure):
    _fields_ = [
        ("epochs", ctypes.c_int),
        ("batch", ctypes.c_int),
        ("lr", ctypes.c_double),
        ("momentum", ctypes.c_double),
        ("decay", ctypes.c_double),
        ("lr_policy", ctypes.c_int),
        ("lr_step", ctypes.c_int),
        ("lr_gamma", ctypes.c_double),
        ("lr_warmup", ctypes.c_double),
        ("seed", _u64),
        ("optimizer", ctypes.c_int),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("shift", ctypes.c_int),
        ("flip", ctypes.c_int),
        ("rotate", ctypes.c_double),
        ("scale", ctypes.c_double),
        ("shear", ctypes.c_double),
        ("erase", ctypes.c_double),
        ("label_smoothing", ctypes.c_double),
        ("ema", ctypes.c_double),
        ("elastic", ctypes.c_double),
        ("mixup", ctypes.c_double),
    ]


class _TrainKey(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("option", ctypes.c_char_p),
        ("arg", ctypes.c_char_p),
        ("help", ctypes.c_char_p),
        ("type", ctypes.c_int),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("default", ctypes.c_double),
        ("choices", ctypes.POINTER(ctypes.c_char_p)),
    ]


class _Rng(ctypes.Structure):
    _fields_ = [("s", _u64 * 4)]


class _TrainState(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_int), ("step", _u64), ("global_step", _u64), ("rng", _Rng)]


class _Progress(ctypes.Structure):
    _fields_ = [
        ("epoch", ctypes.c_int),
        ("epochs", ctypes.c_int),
        ("step", _u64),
        ("steps", _u64),
        ("batch", ctypes.c_int),
        ("global_step", _u64),
        ("lr", ctypes.c_double),
        ("loss", ctypes.c_double),
        ("accuracy", ctypes.c_double),
        ("batches", _u64),
        ("val_loss", ctypes.c_double),
        ("val_accuracy", ctypes.c_double),
        ("images_per_s", ctypes.c_double),
        ("elapsed_s", ctypes.c_double),
        ("val_s", ctypes.c_double),
    ]


_ON_BATCH = ctypes.CFUNCTYPE(_status, ctypes.c_void_p, ctypes.POINTER(_Progress))
_ON_EPOCH = ctypes.CFUNCTYPE(_status, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_Progress))


class _Hooks(ctypes.Structure):
    _fields_ = [
        ("user", ctypes.c_void_p),
        ("on_batch", _ON_BATCH),
        ("on_epoch", _ON_EPOCH),
        ("stop", ctypes.POINTER(ctypes.c_int)),
    ]


class _Image(ctypes.Structure):
    _fields_ = [
        ("w", ctypes.c_int),
        ("h", ctypes.c_int),
        ("c", ctypes.c_int),
        ("px", ctypes.POINTER(ctypes.c_uint8)),
    ]


# cn_status values and cn_block, cn_fit, cn_train_key_type
_CN_OK, _CN_ERR_SHAPE, _CN_ERR_STOPPED = 0, 6, 8
_CN_PARAMS, _CN_BUFFERS = 0, 2
_FITS = {"auto": 0, "digit": 1, "crop": 2, "stretch": 3}
_KEY_NUMBER, _KEY_WHOLE, _KEY_CHOICE = 0, 1, 2

_P = ctypes.c_void_p  # an opaque handle: cn_spec *, cn_model *, cn_net *
_f32p = ctypes.POINTER(ctypes.c_float)
_u8p = ctypes.POINTER(ctypes.c_uint8)
_i32p = ctypes.POINTER(ctypes.c_int32)

# Every function used: name, result, arguments.
_CORE = [
    ("cn_status_name", ctypes.c_char_p, [_status]),
    ("cn_last_error", ctypes.c_char_p, []),
    ("cn_set_memory_limit", None, [_size]),
    ("cn_spec_parse", _status, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_P)]),
    ("cn_spec_load", _status, [ctypes.c_char_p, ctypes.POINTER(_P)]),
    ("cn_spec_free", None, [_P]),
    ("cn_spec_text", ctypes.c_char_p, [_P]),
    ("cn_spec_source", ctypes.c_char_p, [_P]),
    ("cn_spec_train_opts", None, [_P, ctypes.POINTER(_TrainOpts)]),
    ("cn_train_opts_set", _status, [ctypes.POINTER(_TrainOpts), ctypes.c_char_p, ctypes.c_char_p]),
    ("cn_train_key_count", _size, []),
    ("cn_train_key_at", ctypes.POINTER(_TrainKey), [_size]),
    ("cn_net_input_shape", _Shape, [_P]),
    ("cn_net_classes", _size, [_P]),
    ("cn_net_max_batch", _size, [_P]),
    ("cn_net_threads", ctypes.c_int, [_P]),
    ("cn_net_isa", ctypes.c_char_p, [_P]),
    ("cn_net_num_layers", _size, [_P]),
    ("cn_net_layer", _status, [_P, _size, ctypes.POINTER(_LayerInfo)]),
    ("cn_net_num_tensors", _size, [_P]),
    ("cn_net_tensor", _status, [_P, _size, ctypes.POINTER(_TensorInfo)]),
    ("cn_net_get", _status, [_P, ctypes.c_int, _size, _size, _f32p]),
    ("cn_net_set", _status, [_P, ctypes.c_int, _size, _size, _f32p]),
    ("cn_net_prepare", None, [_P, _u8p, _size, _f32p]),
    ("cn_net_forward", _status, [_P, _f32p, _size, ctypes.c_int]),
    ("cn_net_forward_pixels", _status, [_P, _u8p, _size, ctypes.c_int]),
    ("cn_net_get_output", _status, [_P, _f32p]),
    ("cn_net_evaluate", _status, [_P, ctypes.POINTER(_Data), ctypes.POINTER(_Eval)]),
    ("cn_eval_free", None, [ctypes.POINTER(_Eval)]),
    ("cn_data_load_idx", _status, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_Data)]),
    ("cn_data_load", _status, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_Data)]),
    ("cn_data_free", None, [ctypes.POINTER(_Data)]),
    ("cn_model_create", _status, [_P, ctypes.POINTER(_TrainOpts), ctypes.POINTER(_Device), ctypes.POINTER(_P)]),
    ("cn_model_load", _status, [ctypes.c_char_p, ctypes.POINTER(_Device), ctypes.POINTER(_P)]),
    ("cn_model_save", _status, [_P, ctypes.c_char_p]),
    ("cn_model_set_info", _status, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    ("cn_model_info", ctypes.c_char_p, [_P, ctypes.c_char_p]),
    ("cn_model_set_class_names", _status, [_P, ctypes.POINTER(ctypes.c_char_p)]),
    ("cn_model_class_names", ctypes.POINTER(ctypes.c_char_p), [_P]),
    ("cn_model_free", None, [_P]),
    ("cn_model_reserve", _status, [_P, _size]),
    ("cn_model_reserve_inference", _status, [_P, _size]),
    ("cn_model_net", _P, [_P]),
    ("cn_model_spec", _P, [_P]),
    ("cn_model_opts", ctypes.POINTER(_TrainOpts), [_P]),
    ("cn_model_state", ctypes.POINTER(_TrainState), [_P]),
    ("cn_model_train", _status, [_P, ctypes.POINTER(_Data), ctypes.POINTER(_Data), ctypes.POINTER(_Hooks)]),
]
_VIS = [
    ("cn_image_load", _status, [ctypes.c_char_p, ctypes.POINTER(_Image)]),
    ("cn_image_free", None, [ctypes.POINTER(_Image)]),
    ("cn_image_to_input", _status, [ctypes.POINTER(_Image), _Shape, ctypes.c_int, _u8p]),
    ("cn_image_to_planes", _status, [ctypes.POINTER(_Image), _Shape, ctypes.c_int, _u8p]),
]

_lib = None  # the core library, once loaded
_vis = None  # the image library, once loaded
_lib_path = None


def _declare(lib, table):
    for name, res, args in table:
        fn = getattr(lib, name)  # AttributeError names a function the library lacks
        fn.restype = res
        fn.argtypes = args


def _candidates(path, env, name, soname):
    """The places to try for a library, in order."""
    if path:
        return [os.fspath(path)]
    if os.environ.get(env):
        return [os.environ[env]]
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(os.path.dirname(here), "build", name + ".so")]
    found = ctypes.util.find_library(name[3:])
    return out + ([found] if found else []) + [soname]


def _open(candidates, what):
    # GNU OpenMP reads how long idle threads spin from the environment when it
    # loads: briefly, as the convnet command does, unless the user chose
    # (README, "A busy machine"); no effect where it is loaded already.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "1000"
    tried = []
    for c in candidates:
        # A bare name ("libconvnet.so.0") is the dynamic linker's to find.
        if os.sep in c and not os.path.exists(c):
            tried.append(c + " (no such file)")
            continue
        try:
            return ctypes.CDLL(c), c
        except OSError as e:
            tried.append("%s (%s)" % (c, e))
    raise OSError("cannot load %s; tried: %s (build it with make, or set CONVNET_LIB)"
                  % (what, "; ".join(tried)))


def load_library(path=None):
    """Loads the core library (libconvnet.so) from path, or as the module's
    documentation says when path is None, and returns the path it came
    from.  Only the first call loads: a later one with another path raises
    ValueError."""
    global _lib, _lib_path
    if _lib is not None:
        if path is not None and os.path.realpath(os.fspath(path)) != os.path.realpath(_lib_path):
            raise ValueError("the convnet library is already loaded from %s" % _lib_path)
        return _lib_path
    lib, where = _open(_candidates(path, "CONVNET_LIB", "libconvnet", "libconvnet.so.0"),
                       "the convnet library")
    try:
        _declare(lib, _CORE)
    except AttributeError as e:  # an older or foreign library
        raise OSError("%s is not a convnet library this module can use: %s" % (where, e)) from None
    _lib, _lib_path = lib, where
    return where


def library_path():
    """Where the core library was loaded from (loading it if need be)."""
    return load_library()


def _core():
    if _lib is None:
        load_library()
    return _lib


def _vislib():
    """libconvnet_vis.so: beside the core library unless $CONVNET_VIS_LIB."""
    global _vis
    _core()
    if _vis is None:
        if os.environ.get("CONVNET_VIS_LIB"):
            cands = [os.environ["CONVNET_VIS_LIB"]]
        else:
            cands = []
            if os.sep in _lib_path:
                d = os.path.dirname(_lib_path)
                cands += [os.path.join(d, "libconvnet_vis.so"), os.path.join(d, "libconvnet_vis.so.0")]
            found = ctypes.util.find_library("convnet_vis")
            cands += ([found] if found else []) + ["libconvnet_vis.so.0"]
        lib, where = _open(cands, "the convnet image library (libconvnet_vis.so)")
        try:
            _declare(lib, _VIS)
        except AttributeError as e:
            raise OSError("%s is not a convnet image library: %s" % (where, e)) from None
        _vis = lib
    return _vis


# ----------------------------------------------------------------- errors


class Error(Exception):
    """A failure inside the library.  str(e) and e.message are its message
    (cn_last_error); e.status is the cn_status number and e.name its name
    ("CN_ERR_IO")."""

    def __init__(self, status, message, name=None):
        self.status = int(status)
        self.name = name or "CN_ERR_%d" % self.status
        self.message = message
        super().__init__(message)

    def __repr__(self):
        return "%s(%s, %r)" % (type(self).__name__, self.name, self.message)


class ShapeError(Error, ValueError):
    """CN_ERR_SHAPE: data whose shape or classes do not fit the network."""


def _error(status):
    lib = _core()
    msg = (lib.cn_last_error() or b"").decode("utf-8", "replace")
    name = (lib.cn_status_name(status) or b"").decode()
    cls = ShapeError if status == _CN_ERR_SHAPE else Error
    return cls(status, msg or name, name)


def _check(status):
    if status != _CN_OK:
        raise _error(status)


def _str(s):
    return s.decode("utf-8", "replace") if s is not None else None


def _path(p, what="path"):
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise TypeError("%s must be a path (str or os.PathLike), not %s" % (what, type(p).__name__))
    return os.fsencode(p)


# ------------------------------------------------------------ small helpers


def set_memory_limit(nbytes):
    """The most memory, in bytes, that a network built afterwards may plan
    (0: the machine's physical memory).  One setting for the process."""
    if int(nbytes) < 0:
        raise ValueError("the memory limit is a number of bytes >= 0")
    _core().cn_set_memory_limit(int(nbytes))


def recipe_keys():
    """The training recipe's keys, from the library's table: a dict name ->
    (type, min, max, default, help), type "number", "whole" or a tuple of
    the words a choice takes (min, max and default are then words too)."""
    lib = _core()
    out = {}
    for i in range(lib.cn_train_key_count()):
        k = lib.cn_train_key_at(i).contents
        if k.type == _KEY_CHOICE:
            words = []
            while k.choices[len(words)]:
                words.append(_str(k.choices[len(words)]))
            kind = tuple(words)
            lo, hi, df = words[int(k.min)], words[int(k.max)], words[int(k.default)]
        else:
            kind = "whole" if k.type == _KEY_WHOLE else "number"
            lo, hi, df = k.min, k.max, k.default
            if kind == "whole":
                lo, hi, df = int(lo), int(hi), int(df)
        out[_str(k.name)] = (kind, lo, hi, df, _str(k.help))
    return out


def _recipe_text(key, value):
    """A Python value as [train] would spell it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # the shortest text that reads back exactly
    if isinstance(value, str):
        return value
    raise TypeError("recipe key %s takes a number or a word, not %s" % (key, type(value).__name__))


def _set_recipe(opts, overrides):
    lib = _core()
    for key, value in overrides.items():
        _check(lib.cn_train_opts_set(ctypes.byref(opts), key.encode(), _recipe_text(key, value).encode()))


def _recipe_dict(opts):
    out = {}
    for name, (kind, *_rest) in recipe_keys().items():
        if not hasattr(opts, name):  # a key newer than this module
            continue
        v = getattr(opts, name)
        out[name] = kind[v] if isinstance(kind, tuple) else v
    return out


def _data_from(images, labels, what):
    """A cn_data over the memory of two numpy arrays (which the caller keeps
    alive while the library reads them): uint8 (N, C, H, W) and N labels."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError("%s images must be a numpy array of uint8 pixels (N, C, H, W), not %s"
                        % (what, _describe(images)))
    if images.ndim != 4:
        raise ValueError("%s images must be 4-D (N, C, H, W), got shape %s%s"
                         % (what, images.shape, _grey_hint(images.shape)))
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError("%s labels must be 1-D with one label per image (%d), got shape %s"
                         % (what, images.shape[0], labels.shape))
    if labels.dtype.kind not in "iu":
        raise TypeError("%s labels must be whole numbers, not %s" % (what, labels.dtype))
    if images.shape[0] == 0:
        raise ValueError("%s: no images" % what)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi > 2**31 - 1:
        raise ValueError("%s labels must be class numbers >= 0 (below 2^31), got %d"
                         % (what, lo if lo < 0 else hi))
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    d = _Data()
    d.n = images.shape[0]
    d.shape = _Shape(*images.shape[1:])
    d.classes = int(labels.max()) + 1  # as the IDX reader counts them
    d.pixels = images.ctypes.data_as(_u8p)
    d.labels = labels.ctypes.data_as(_i32p)
    d.owned = 0  # the arrays own the memory
    return d, (images, labels)


def _describe(x):
    return ("an array of %s" % x.dtype) if isinstance(x, np.ndarray) else type(x).__name__


def _grey_hint(shape):
    return "; for grey images add the channel axis: x[:, None]" if len(shape) == 3 else ""


def _data_to_numpy(d):
    """Copies a loaded cn_data into numpy arrays and frees it."""
    try:
        shape = (d.n, d.shape.c, d.shape.h, d.shape.w)
        size = int(np.prod(shape))
        pix = np.ctypeslib.as_array(d.pixels, (size,)).reshape(shape).copy() if size else np.zeros(shape, np.uint8)
        lab = np.ctypeslib.as_array(d.labels, (d.n,)).copy() if d.n else np.zeros(0, np.int32)
        return pix, lab
    finally:
        _core().cn_data_free(ctypes.byref(d))


def load_data(directory, split):
    """The data set in directory (MNIST's IDX files or CIFAR-10's binary
    batches), split "train" or "test": (images uint8 (N, C, H, W), labels
    int32 (N,)), as convnet train and eval read them."""
    if split not in ("train", "test"):
        raise ValueError("split is 'train' or 'test', not %r" % (split,))
    d = _Data()
    _check(_core().cn_data_load(_path(directory, "directory"), split.encode(), ctypes.byref(d)))
    return _data_to_numpy(d)


def load_idx(images_path, labels_path):
    """An IDX image file and its IDX label file (raw or gzip-compressed):
    (images uint8 (N, C, H, W), labels int32 (N,))."""
    d = _Data()
    _check(_core().cn_data_load_idx(_path(images_path), _path(labels_path), ctypes.byref(d)))
    return _data_to_numpy(d)


def _load_image(path):
    """An image file as a cn_image; the caller frees it."""
    vis = _vislib()
    img = _Image()
    _check(vis.cn_image_load(_path(path), ctypes.byref(img)))
    return img


def read_image(path):
    """An image file (PNG, JPEG, BMP, PGM/PPM, GIF, TGA) as uint8 (H, W, C),
    C = 1 (grey) or 3 (RGB); transparency composited over white."""
    img = _load_image(path)
    try:
        shape = (img.h, img.w, img.c)
        return np.ctypeslib.as_array(img.px, (img.h * img.w * img.c,)).reshape(shape).copy()
    finally:
        _vislib().cn_image_free(ctypes.byref(img))


# ------------------------------------------------------------------ model

Layer = namedtuple("Layer", "name kind line input output params macs")
Layer.__doc__ = """One layer: its name ("conv1"), kind ("conv"), line in the
description, per-sample input and output shapes (C, H, W), parameters and
multiply-adds per sample."""

Evaluation = namedtuple("Evaluation", "accuracy loss predicted probability confusion")
Evaluation.__doc__ = """Model.evaluate's result: accuracy (fraction), mean
loss (negative log-likelihood), each sample's predicted class (N,) and its
probability (N,), and the confusion matrix (classes, classes) [true][predicted]."""

Progress = namedtuple(
    "Progress",
    "epoch epochs step steps batch global_step lr loss accuracy batches "
    "val_loss val_accuracy images_per_s elapsed_s val_s",
)
Progress.__doc__ = """What training reports: epoch (from 0) of epochs, step
of steps (batches per epoch), the running mean loss and accuracy of this
epoch's batches, and at the end of an epoch val_loss and val_accuracy (None
without validation data); lr, throughput and times in seconds."""


def _progress(p):
    p = p.contents
    v = [getattr(p, f) for f in Progress._fields]
    out = Progress(*v)
    if out.val_accuracy < 0:
        out = out._replace(val_loss=None, val_accuracy=None)
    return out


def _device(threads, backend):
    if threads is None:
        threads = 0
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 0:
        raise ValueError("threads is a whole number >= 1 (or None: one per core), not %r" % (threads,))
    return _Device((backend or "cpu").encode(), 0, int(threads))


def _is_description_text(d):
    return isinstance(d, str) and ("\n" in d or d.lstrip().startswith("["))


class Model:
    """A convnet model: a description, its network with weights, the
    training recipe and state, as a model file (.safetensors) holds it.

    Make one with Model.load(path) or Model.create(description).  It holds
    C memory: close() (or a with block) frees it at once; otherwise it is
    freed when the object is collected."""

    def __init__(self, _handle=None):
        if _handle is None:
            raise TypeError("use Model.load(path) or Model.create(description)")
        self._lib = _core()
        self._h = _handle

    # -- making and freeing

    @classmethod
    def load(cls, path, threads=None, backend=None, library=None):
        """Reads a model file written by convnet train or Model.save.
        threads: worker threads (None: one per core); backend: "cpu" or
        "guard"; library: the path of libconvnet.so (see load_library)."""
        if library is not None:
            load_library(library)
        lib = _core()
        dev = _device(threads, backend)
        h = _P()
        st = lib.cn_model_load(_path(path), ctypes.byref(dev), ctypes.byref(h))
        if st != _CN_OK:
            e = _error(st)
            if e.name == "CN_ERR_FORMAT" and os.fsdecode(_path(path)).endswith(".cfg"):
                e.message += " (%s is a model description: Model.create takes it)" % os.fsdecode(path)
                e.args = (e.message,)
            raise e
        return cls(h)

    @classmethod
    def create(cls, description, source=None, threads=None, backend=None, library=None, **recipe):
        """A new model with He-initialised weights from a model description:
        its text (a string holding a newline or starting with '['), or the
        path of a .cfg file.  source names the text in error messages
        (default "<string>").  recipe: keys of [train] to override, by
        [train]'s names or the command line's (lr=0.05, lr_policy="cosine",
        seed=7, epochs=2); the seed sets the weights."""
        if library is not None:
            load_library(library)
        lib = _core()
        dev = _device(threads, backend)
        spec = _P()
        if _is_description_text(description):
            name = source if source is not None else "<string>"
            _check(lib.cn_spec_parse(description.encode(), name.encode(), ctypes.byref(spec)))
        elif isinstance(description, (str, bytes, os.PathLike)):
            _check(lib.cn_spec_load(_path(description), ctypes.byref(spec)))
        else:
            raise TypeError("a description is its text or the path of a .cfg file, not %s"
                            % type(description).__name__)
        try:
            opts = _TrainOpts()
            lib.cn_spec_train_opts(spec, ctypes.byref(opts))
            _set_recipe(opts, recipe)
            h = _P()
            _check(lib.cn_model_create(spec, ctypes.byref(opts), ctypes.byref(dev), ctypes.byref(h)))
        finally:
            lib.cn_spec_free(spec)
        return cls(h)

    def close(self):
        """Frees the model's C memory; the object is then unusable.  Closing
        twice does nothing."""
        h, self._h = getattr(self, "_h", None), None
        if h:
            self._lib.cn_model_free(h)

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit the module may be half gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return not self._h

    def _model(self):
        if not self._h:
            raise ValueError("the model is closed")
        return self._h

    def _net(self):
        return self._lib.cn_model_net(self._model())

    def __repr__(self):
        if not self._h:
            return "<convnet.Model (closed)>"
        c, h, w = self.input_shape
        return "<convnet.Model %s: %dx%dx%d -> %d classes, %d parameters>" % (
            self.source, c, h, w, self.classes, self.num_parameters)

    # -- what it is

    @property
    def input_shape(self):
        """(C, H, W) of one input sample."""
        s = self._lib.cn_net_input_shape(self._net())
        return (s.c, s.h, s.w)

    @property
    def classes(self):
        return self._lib.cn_net_classes(self._net())

    @property
    def threads(self):
        return self._lib.cn_net_threads(self._net())

    @property
    def isa(self):
        """The kernel set in use: "avx512", "avx2" or "portable"."""
        return _str(self._lib.cn_net_isa(self._net()))

    @property
    def description(self):
        """The model description's text."""
        return _str(self._lib.cn_spec_text(self._lib.cn_model_spec(self._model())))

    @property
    def source(self):
        """Where the description came from (a path, or the source name)."""
        return _str(self._lib.cn_spec_source(self._lib.cn_model_spec(self._model())))

    @property
    def layers(self):
        """The layers, in order, as Layer tuples."""
        net, out = self._net(), []
        for i in range(self._lib.cn_net_num_layers(net)):
            li = _LayerInfo()
            _check(self._lib.cn_net_layer(net, i, ctypes.byref(li)))
            out.append(Layer(_str(li.name), _str(li.kind), li.line, (li.inp.c, li.inp.h, li.inp.w),
                             (li.out.c, li.out.h, li.out.w), li.params, li.macs))
        return out

    @property
    def num_parameters(self):
        return sum(layer.params for layer in self.layers)

    def _tensors(self):
        net, out = self._net(), []
        for i in range(self._lib.cn_net_num_tensors(net)):
            ti = _TensorInfo()
            _check(self._lib.cn_net_tensor(net, i, ctypes.byref(ti)))
            out.append((_str(ti.name), tuple(ti.dims[: ti.ndim]), ti.count, ti.offset, ti.trainable))
        return out

    def _get_tensors(self, trainable):
        net, out = self._net(), {}
        for name, dims, count, offset, tr in self._tensors():
            if bool(tr) != trainable:
                continue
            a = np.empty(count, np.float32)
            block = _CN_PARAMS if tr else _CN_BUFFERS
            _check(self._lib.cn_net_get(net, block, offset, count, a.ctypes.data_as(_f32p)))
            out[name] = a.reshape(dims)
        return out

    def parameters(self):
        """The trainable tensors as a dict name -> float32 array (copies), in
        PyTorch's layout: conv weight [out, in, kh, kw], fc weight [out, in],
        bias [out]."""
        return self._get_tensors(True)

    def buffers(self):
        """The tensors saved but not trained (batch-norm running statistics)."""
        return self._get_tensors(False)

    def set_parameters(self, tensors):
        """Copies arrays into the model's tensors (parameters or buffers) by
        name; each must have the tensor's shape."""
        net = self._net()
        known = {t[0]: t for t in self._tensors()}
        for name, value in tensors.items():
            if name not in known:
                raise KeyError("the model has no tensor %r; it has: %s" % (name, ", ".join(known)))
            _, dims, count, offset, tr = known[name]
            a = np.ascontiguousarray(value, dtype=np.float32)
            if a.shape != dims:
                raise ValueError("tensor %s has shape %s, got %s" % (name, dims, a.shape))
            _check(self._lib.cn_net_set(net, _CN_PARAMS if tr else _CN_BUFFERS, offset, count,
                                        a.ctypes.data_as(_f32p)))

    @property
    def recipe(self):
        """The training recipe as a dict (a copy): epochs, batch, lr, ..."""
        return _recipe_dict(self._lib.cn_model_opts(self._model()).contents)

    def set_recipe(self, **recipe):
        """Changes keys of the recipe (as Model.create's); a bad value raises
        Error with the library's message and changes nothing."""
        opts = self._lib.cn_model_opts(self._model()).contents
        want = _TrainOpts.from_buffer_copy(opts)
        _set_recipe(want, recipe)
        ctypes.memmove(ctypes.addressof(opts), ctypes.addressof(want), ctypes.sizeof(_TrainOpts))

    @property
    def state(self):
        """Training so far: (epoch, step, global_step) as a dict."""
        s = self._lib.cn_model_state(self._model()).contents
        return {"epoch": s.epoch, "step": s.step, "global_step": s.global_step}

    # -- inputs

    def _check_sample_shape(self, shape, what):
        want = self.input_shape
        if len(shape) not in (3, 4) or tuple(shape[-3:]) != want:
            raise ValueError("the model takes %s of shape (N, %d, %d, %d) or (%d, %d, %d), got %s%s"
                             % (what, *want, *want, tuple(shape),
                                _grey_hint(shape) if len(shape) == 3 and shape[1:] == want[1:] else ""))

    def prepare(self, pixels):
        """8-bit pixels (N, C, H, W) or (C, H, W) as the network's input,
        float32 of the same shape: (p / 255 - mean) / std with the model's
        mean and std."""
        p = self._pixels(pixels)
        single = p.ndim == 3
        p = p[None] if single else p
        x = np.empty(p.shape, np.float32)
        self._lib.cn_net_prepare(self._net(), p.ctypes.data_as(_u8p), p.shape[0], x.ctypes.data_as(_f32p))
        return x[0] if single else x

    def _pixels(self, pixels):
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
            raise TypeError("pixels must be a numpy array of uint8, not %s" % _describe(pixels))
        self._check_sample_shape(pixels.shape, "pixels")
        return np.ascontiguousarray(pixels)

    def image_input(self, path, fit="auto"):
        """An image file brought to the model's input as 8-bit pixels (C, H,
        W), as convnet predict does: fit is "digit" (MNIST's procedure: the
        ink centred, light on black), "crop", "stretch" or "auto" (the fit of
        the pictures the model was trained on: digit for digits, crop for
        other pictures; for older files digit for grey networks, crop for
        colour ones).  A model trained on folders of pictures gets them as
        the folder reader read its training pictures (levels as they are)."""
        if fit not in _FITS:
            raise ValueError("fit is auto, digit, crop or stretch, not %r" % (fit,))
        folder, kind = self.info("data.fit"), self.info("data.kind")
        if fit == "auto" and folder in _FITS:
            fit = folder
        elif fit == "auto" and kind is not None:
            fit = "digit" if kind == "digits" else "crop"
        vis = _vislib()
        c, h, w = self.input_shape
        out = np.empty((c, h, w), np.uint8)
        img = _load_image(path)
        convert = vis.cn_image_to_planes if folder is not None else vis.cn_image_to_input
        try:
            st = convert(ctypes.byref(img), _Shape(c, h, w), _FITS[fit], out.ctypes.data_as(_u8p))
            if st != _CN_OK:
                e = _error(st)
                # cn_image_to_input's message does not name the file
                e.message = "%s: %s" % (os.fsdecode(_path(path)), e.message)
                e.args = (e.message,)
                raise e
        finally:
            vis.cn_image_free(ctypes.byref(img))
        return out

    # -- prediction

    def predict(self, x, batch=256):
        """Class probabilities for x: uint8 pixels, normalised by the
        library as the model's [net] says, or float32/float64 prepared input
        (what Model.prepare gives).  x is (N, C, H, W), giving (N, classes),
        or one sample (C, H, W), giving (classes,).  batch: samples per
        forward pass."""
        if not isinstance(x, np.ndarray):
            raise TypeError("x must be a numpy array (uint8 pixels or float input), not %s"
                            % type(x).__name__)
        if x.dtype == np.uint8:
            kind = "pixels"
        elif x.dtype in (np.float32, np.float64):
            kind = "input"
        else:
            raise TypeError("x must hold uint8 pixels or float32 input, not %s" % x.dtype)
        self._check_sample_shape(x.shape, "uint8 pixels" if kind == "pixels" else "float input")
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError("batch is a whole number >= 1, not %r" % (batch,))
        single = x.ndim == 3
        x = x[None] if single else x
        x = np.ascontiguousarray(x, dtype=np.uint8 if kind == "pixels" else np.float32)
        n = x.shape[0]
        k = self.classes
        out = np.empty((n, k), np.float32)
        if n:
            self._reserve(min(n, int(batch)))
        net = self._net()
        nb = self._lib.cn_net_max_batch(net)
        for i in range(0, n, nb):
            part = x[i : i + nb]
            m = part.shape[0]
            if kind == "pixels":
                st = self._lib.cn_net_forward_pixels(net, part.ctypes.data_as(_u8p), m, 0)
            else:
                st = self._lib.cn_net_forward(net, part.ctypes.data_as(_f32p), m, 0)
            _check(st)
            _check(self._lib.cn_net_get_output(net, out[i : i + m].ctypes.data_as(_f32p)))
        return out[0] if single else out

    def _reserve(self, n):
        # predict reads the probabilities only: a forward-only network
        # (training rebuilds the full one)
        if self._lib.cn_net_max_batch(self._net()) < n:
            _check(self._lib.cn_model_reserve_inference(self._model(), n))

    def predict_image(self, path, fit="auto"):
        """Class probabilities for an image file (classes,), or for a list of
        them (N, classes), prepared as convnet predict prepares them (see
        image_input)."""
        if isinstance(path, (list, tuple)):
            if not path:
                return np.empty((0, self.classes), np.float32)
            return self.predict(np.stack([self.image_input(p, fit) for p in path]))
        return self.predict(self.image_input(path, fit))

    def evaluate(self, images, labels):
        """Accuracy, mean loss, predictions and confusion matrix on uint8
        images (N, C, H, W) with labels (N,), as convnet eval computes them.
        Images that do not fit the network raise ShapeError."""
        d, keep = _data_from(images, labels, "evaluation")
        ev = _Eval()
        _check(self._lib.cn_net_evaluate(self._net(), ctypes.byref(d), ctypes.byref(ev)))
        try:
            n, k = ev.n, ev.classes
            pred = np.ctypeslib.as_array(ev.predicted, (n,)).astype(np.int64)
            prob = np.ctypeslib.as_array(ev.probability, (n,)).copy()
            conf = np.ctypeslib.as_array(ev.confusion, (k * k,)).astype(np.int64).reshape(k, k)
            return Evaluation(ev.accuracy, ev.loss, pred, prob, conf)
        finally:
            self._lib.cn_eval_free(ctypes.byref(ev))
            del keep  # the arrays the library read

    # -- training

    def train(self, images, labels, val_images=None, val_labels=None, epochs=None,
              on_batch=None, on_epoch=None):
        """Trains on uint8 images (N, C, H, W) with labels (N,) until the
        model has completed `epochs` epochs in all (default: the recipe's;
        a loaded model resumes where it stopped, as convnet train --resume).
        Each epoch draws a fresh permutation; the last incomplete batch is
        dropped.  With validation data each epoch ends with its loss and
        accuracy.  on_batch(progress) is called after every batch and
        on_epoch(progress) after every epoch, with a Progress; either may
        return False to stop training after that batch (the model stays
        consistent: save it and train again to continue).  An exception in
        a callback stops training and is raised again; so is Ctrl-C.
        Returns the Progress of each epoch completed in this call."""
        model = self._model()
        tr, keep = _data_from(images, labels, "training")
        val = None
        if (val_images is None) != (val_labels is None):
            raise ValueError("give both val_images and val_labels, or neither")
        if val_images is not None:
            val, keep_val = _data_from(val_images, val_labels, "validation")
        if epochs is not None:
            self.set_recipe(epochs=epochs)
        history = []
        stop = ctypes.c_int(0)
        caught = []  # an exception raised in a callback, or Ctrl-C

        def hook(fn, p):
            # The whole body under try: an exception must not escape into
            # ctypes, which would print it and carry on.
            try:
                if caught:
                    return None
                prog = _progress(p)
                if fn is not None and fn(prog) is False:
                    stop.value = 1
                return prog
            except BaseException as e:
                caught.append(e)
                stop.value = 1
                return None

        def batch_hook(_user, p):
            hook(on_batch, p)
            return _CN_OK

        def epoch_hook(_user, _model, p):
            prog = hook(on_epoch, p)
            if prog is not None:
                history.append(prog)
            return _CN_OK

        # Ctrl-C asks training to stop after the current batch; Python runs
        # the handler in the next callback (there is one after every batch).
        def on_sigint(_sig, _frame):
            caught.append(KeyboardInterrupt())
            stop.value = 1

        old = None
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                old = signal.signal(signal.SIGINT, on_sigint)
        hooks = _Hooks(None, _ON_BATCH(batch_hook), _ON_EPOCH(epoch_hook), ctypes.pointer(stop))
        try:
            st = self._lib.cn_model_train(model, ctypes.byref(tr), ctypes.byref(val) if val else None,
                                          ctypes.byref(hooks))
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        del keep
        if val is not None:
            del keep_val
        if caught:
            raise caught[0]
        if st == _CN_ERR_STOPPED and stop.value:
            return history
        _check(st)
        return history

    def info(self, key):
        """The note kept in the model file under key (convnet train keeps
        data.dir, data.limit, data.val, data.fingerprint, data.kind), or None."""
        return _str(self._lib.cn_model_info(self._model(), key.encode()))

    def set_info(self, key, value):
        """Keeps a note (a string; None removes it) in the model file."""
        _check(self._lib.cn_model_set_info(self._model(), key.encode(),
                                           None if value is None else str(value).encode()))

    @property
    def class_names(self):
        """The names of the classes (a list of strings: class k's name at k),
        kept in the model file; None when the model has none (convnet train
        takes them from the data: folder names, classes.txt)."""
        names = self._lib.cn_model_class_names(self._model())
        if not names:
            return None
        return [names[k].decode() for k in range(self.classes)]

    @class_names.setter
    def class_names(self, names):
        if names is None:
            _check(self._lib.cn_model_set_class_names(self._model(), None))
            return
        names = [str(n) for n in names]
        if len(names) != self.classes:
            raise ValueError("%d class names for a network of %d classes"
                             % (len(names), self.classes))
        arr = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
        _check(self._lib.cn_model_set_class_names(self._model(), arr))

    def save(self, path):
        """Writes the model file (weights, optimizer state, recipe, training
        state) atomically, as convnet train does."""
        _check(self._lib.cn_model_save(self._model(), _path(path)))
