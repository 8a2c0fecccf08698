"""SQL on FHIR v2 ViewDefinitions compiled to Spark (`python -m spark_jobs.sof --help`).

fhirpath (text -> syntax tree) -> compiler (tree -> Spark Columns, typed by the R4
element table in r4) -> view (select/forEach/repeat/unionAll -> rows per resource);
phi_policy decides what a view may output; catalog turns include/views/ into silver
tables; conformance runs the official test suite.
"""
