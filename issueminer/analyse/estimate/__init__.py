"""Estimated tables: the study's questions answered on issues nobody has labelled.

Modules: `population` (which issues: a crawl, dates, a framework group), `sample` (the
labelled-sample estimator, prediction-powered inference), `quantify` (adjusted
classify-and-count, ACC and PACC, with a bootstrap), `calibration` (the classifier's
out-of-fold predictions on the study's labels, and the tables quantified with them),
`design` (the sample to label for an estimate: size, draw, weights), `tables` (every
table of `stats`, estimated) and `then_now` (a study beside a population's estimates,
and its report).
"""
