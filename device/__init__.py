"""ferlite device runtime: numpy, OpenCV and a LiteRT interpreter only.

This package is the import-light base of ferlite. It owns the one definition of
what a model sees (``contract``), the metadata written beside every model
(``metadata``), the interpreter wrapper (``interpreter``) and the shared scoring
function (``metrics``). ``train`` and ``convert`` import from here; nothing here
imports from them, TensorFlow or Keras.
"""
