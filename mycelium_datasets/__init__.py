"""Mycelium datasets: the artifacts, and nothing above them.

This is the lower layer. Each artifact has one module (``problems``, ``cot_traces``, ``jsd_spans``, ``iaf_maps``,
``clause_regions``, ``op_pairs``, ``student_sets``) holding its ``FEATURES``, its config dataclass and its pure
``batch -> batch`` transforms; its versioned builder, the artifact's whole declaration, is in
``mycelium_datasets.builders`` (the registry ``BUILDERS``, in pipeline order), and ``pipeline`` builds them into a
run folder. Shared facts have one home each: ``numbers`` (what a number in text is), ``equations`` (reading
equations out of a CoT), ``op_graph`` (the operation graph, its execution and validation), ``arith`` (the safe
parser), ``answers`` (answer extraction and checking), ``clauses``, ``columns``, ``provenance``, ``card``.

Data flows one way: nothing here imports ``mycelium_models`` (the students, the solver, the evaluation and the
end-to-end job live there, above this package); ``tests/test_layers.py`` checks it.
"""

__version__ = "0.1.0"
