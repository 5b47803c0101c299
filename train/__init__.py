"""ferlite training: FER2013 -> a Keras model taking a 48x48 face (see device.contract).

Entry points: ``python -m train`` (train/cli.py), ``train.fit.train_run(TrainConfig)``,
``train.data.load_fer2013`` / ``make_split`` (numpy only), ``train.models.build_model``.
"""
