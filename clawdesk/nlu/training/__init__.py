"""Fitting and evaluating intent models: the research bench, kept out of the serving path.

:func:`~clawdesk.nlu.training.fit.fit_intent_model` builds a serving
:class:`~clawdesk.nlu.model.IntentClassifier` from labelled examples
(:mod:`~clawdesk.nlu.training.examples`); :mod:`~clawdesk.nlu.training.evaluate` measures
one.  Serving code (``clawdesk.nlu`` outside this package) never imports it at module
level; ``tests/nlu/test_serving_imports.py`` checks that.
"""
