"""The orchestration, above both layers: the command line (``cli``), the end-to-end run (``job``: artifacts, then
``stage``: the students and the evaluation), the self-improving ``loop``, ``release``, the run ``report``, the
presets (``configs/``), the ``logs`` set-up and ``versions`` (each artifact's and the students' version with its
code hash). Nothing below imports it: the artifacts (``mycelium_datasets``) and the students and solver
(``mycelium_models``) are usable without it (``tests/test_layers.py``)."""
