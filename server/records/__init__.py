"""Record rules: how one record becomes a row, an image, a quarantine entry.

`rows` (a mapped record as a row of its store's table, a row as an image and back), `names`
(names unique per user), `quarantine` (raw records that did not become a row, and why, their
secrets encrypted or masked), `secrets` (encryption of secrets at rest) and `references`
(references between stores). They sit between the pipeline (`ingest`, `sessions`) and storage (`db`).
"""
