"""Fitting intent models: features, calibration, evaluation (not imported by the serving path)."""
