"""Estimated tables: the study's questions answered on issues nobody has labelled.

Modules: `sample` (the labelled-sample estimator, prediction-powered inference with
ppi_py), `quantify` (adjusted classify-and-count with a bootstrap, for when only the
study's own labels exist).
"""
