"""Reading a finished run: restoring it, predicting, the evaluation report and the plots."""
