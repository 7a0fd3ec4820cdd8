"""Reading a model file as registered: skops files safely, pickles only when trusted.

A pickle runs whatever code it holds when loaded. mlqueue reads one only when the person
registering it says they trust it (``--trust-pickle``, or ``register_model`` with an
estimator from their own Python process); workers read the registered file only for a
model that could not be converted to ONNX.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# skops refuses to load types it does not know; these packages' own types are data
# containers (trees, arrays), not code, so a file holding only them loads without trust.
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def read_model_file(path: Path, *, trust_pickle: bool) -> tuple[Any, bytes, str]:
    """(estimator, the file's bytes, its format) for a skops or pickle/joblib file.

    A pickle runs code when loaded, so it is read only when the caller says it trusts
    it; a skops file is read safely, unless it holds types outside scikit-learn, NumPy
    and SciPy, which also need the caller's trust.
    """
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".skops":
        import skops.io as sio

        unknown = sio.get_untrusted_types(data=data)
        foreign = [t for t in unknown if not t.startswith(TRUSTED_TYPE_PREFIXES)]
        if foreign and not trust_pickle:
            raise ConfigurationError(
                f"{path} holds types that may run code when loaded ({', '.join(foreign)}); "
                "register it with --trust-pickle only if you trust where it came from"
            )
        return sio.loads(data, trusted=unknown), data, "skops"
    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ConfigurationError(
                f"{path} is a pickle: loading one runs whatever code it holds. Save the model "
                "with skops (skops.io.dump(model, 'model.skops')), or pass --trust-pickle if "
                "you trust where the file came from"
            )
        return load_estimator(data, "pickle"), data, "pickle"
    raise ConfigurationError(
        f"cannot tell the format of {path.name}: use a .skops file, or a "
        f"{'/'.join(PICKLE_SUFFIXES)} file with --trust-pickle"
    )


def dump_estimator(estimator: Any) -> bytes:
    """An estimator as registered from Python: a compressed joblib pickle (the same
    object gives the same bytes, so registering it again is a no-op)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


def load_estimator(data: bytes, source_format: str) -> Any:
    """The estimator from its registered bytes (trust was decided at registration)."""
    if source_format == "skops":
        import skops.io as sio

        return sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    import joblib  # reads plain pickles as well as joblib's own files

    return joblib.load(io.BytesIO(data))
