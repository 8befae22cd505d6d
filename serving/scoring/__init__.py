"""The scorer and its words: models in, scores, reasons, plays and what changed out, for the API and the batch run.

``scorer.Scorer`` is the one scoring path; ``models`` builds it from the registry or the store
(``bento_adapter`` is the one door to BentoML internals); ``reasons``, ``plays``, ``wording``,
``peers`` and ``changes`` say why, what to do and what moved; ``batch`` and ``spark_batch`` run
it over the whole book into a sink.
"""
