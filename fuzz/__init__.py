"""Coverage-guided fuzzing (atheris) of every parser that reads outside data.

``python -m fuzz.run TARGET [libFuzzer options] [CORPUS...]`` runs one target; ``python -m fuzz.run
--all --seconds N`` runs each in turn (``make fuzz``). ``fuzz/corpus/<target>/`` holds the seeds,
``python -m fuzz.seeds`` writes them again. A crash is any exception but our typed errors
(``MediatorError``) and the ones a target documents (``fuzz.targets.TARGETS``).
"""
