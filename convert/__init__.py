"""ferlite convert: Keras run folder -> float32 / int8 (/ float16 / dynamic-range) TFLite plus a report.

    python -m convert RUN_DIR --int8 [--float16] [--dynamic] [--out DIR] [--max-drop PP]

Import-light: TensorFlow is imported only when a conversion actually runs, and
only ever here in ``convert/`` (``device/`` never imports it).
"""
from __future__ import annotations

import os
import warnings


def quiet_tensorflow():
    """Import TensorFlow with its C++ and Python logging turned down; returns the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import logging
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The converter warns on every int8 run that it got no input statistics (it uses the
    # representative dataset instead), and Keras warns about unbuilt metrics: noise here.
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
    warnings.filterwarnings("ignore", module="tensorflow")
    warnings.filterwarnings("ignore", module="keras")
    from .console import captured_stderr
    with captured_stderr():  # oneDNN banner and absl pre-init warnings come from C++
        import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)
    try:
        tf.autograph.set_verbosity(0)
    except Exception:
        pass
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except Exception:
        pass
    return tf
