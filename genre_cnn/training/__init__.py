"""The training stack (Lightning): the DataModule, the LightningModules, a run's fit, calibration and test, the
reports, and the ready model's recipe. `python train.py` starts here."""
