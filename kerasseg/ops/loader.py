"""Builds and loads the C++ ops, or says why the pure-TF fallback is used.

The shared library is compiled on first use with g++ against the installed
TensorFlow (flags from `tf.sysconfig`) and cached under
`$KERASSEG_CACHE_DIR/ops/<tf-version>-<hash>/` (default cache dir:
`$XDG_CACHE_HOME/kerasseg` or `~/.cache/kerasseg`). The hash covers the C++
sources and the compiler command, so editing a source or upgrading TensorFlow
builds a fresh library. `KERASSEG_DISABLE_CUSTOM_OPS=1` skips the custom ops.
"""

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE_DIR = Path(__file__).parent / "cc"
LIBRARY_NAME = "_kerasseg_ops.so"
# Where the sources include "kerasseg/ops/cc/...".
_INCLUDE_ROOT = Path(__file__).parents[2]


def cache_dir():
    """The root cache directory (`KERASSEG_CACHE_DIR` overrides it)."""
    if os.environ.get("KERASSEG_CACHE_DIR"):
        return Path(os.environ["KERASSEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kerasseg"


def _sources():
    return sorted(SOURCE_DIR.rglob("*.cc")), sorted(SOURCE_DIR.rglob("*.h"))


def _compile_commands(tf, objects_dir):
    compiler = os.environ.get("CXX", "g++")
    # -fno-math-errno lets std::lrint (the lattice rounds every coordinate)
    # compile to one instruction instead of a library call.
    flags = [*tf.sysconfig.get_compile_flags(), "-std=c++17", "-O3", "-fno-math-errno", "-fPIC",
             "-Wno-deprecated-declarations", f"-I{_INCLUDE_ROOT}"]
    sources, _ = _sources()
    objects = [objects_dir / (s.relative_to(SOURCE_DIR).as_posix().replace("/", "_") + ".o")
               for s in sources]
    compile_commands = [[compiler, *flags, "-c", str(s), "-o", str(o)]
                        for s, o in zip(sources, objects, strict=True)]
    link = [compiler, "-shared", *map(str, objects), *tf.sysconfig.get_link_flags()]
    return compile_commands, link


def library_path():
    """Where the library for the installed TensorFlow and current sources lives."""
    import tensorflow as tf

    digest = hashlib.sha256()
    for path in sum(_sources(), []):
        digest.update(path.relative_to(SOURCE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    compile_commands, link = _compile_commands(tf, Path("."))
    digest.update(repr((compile_commands, link)).encode())
    return cache_dir() / "ops" / f"{tf.__version__}-{digest.hexdigest()[:16]}" / LIBRARY_NAME


def build(path=None):
    """Compiles the ops into `path` (default `library_path()`) and returns it.

    Sources compile in parallel; the library is written to a temporary name and
    renamed, so concurrent builds never load a half-written file.

    Raises:
        RuntimeError: with the compiler's output when a step fails.
    """
    import tensorflow as tf

    path = Path(path or library_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp = Path(tmp)
        compile_commands, link = _compile_commands(tf, tmp)
        processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for c in compile_commands]
        for command, process in zip(compile_commands, processes, strict=True):
            output, _ = process.communicate()
            if process.returncode:
                raise RuntimeError(f"`{' '.join(command)}` failed:\n{output[-4000:]}")
        staged = tmp / LIBRARY_NAME
        result = subprocess.run([*link, "-o", str(staged)], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"`{' '.join(link)}` failed:\n{result.stderr[-4000:]}")
        os.replace(staged, path)
    return path


@functools.cache
def load_ops():
    """The loaded op module, or None (after one warning) when it is unavailable.

    Returns:
        The module from `tf.load_op_library`, whose functions are
        `kerasseg_permutohedral_lattice` and `kerasseg_permutohedral_filter`.
    """
    import tensorflow as tf

    if os.environ.get("KERASSEG_DISABLE_CUSTOM_OPS", "") not in ("", "0"):
        return None
    try:
        path = library_path()
        if not path.exists():
            if shutil.which(os.environ.get("CXX", "g++")) is None:
                raise RuntimeError("no C++ compiler (g++, or $CXX) was found")
            build(path)
        return tf.load_op_library(str(path))
    except Exception as error:  # noqa: BLE001 - any failure means: use the fallback
        warnings.warn(
            "kerasseg: the permutohedral C++ op could not be built or loaded, so dense "
            "CRF filtering falls back to the exact pure-TF implementation, which costs "
            "O(pixels^2) and is only practical for small images. Install g++ to get the "
            f"fast op. Cause: {error}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
