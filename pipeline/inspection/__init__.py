"""An archive inspected and verified where it lies (local or ``s3://``), without the originals:
``listing`` (its shards, markers and manifest, found with one listing), ``info`` (what it holds, from
Parquet footers and small columns: ``diffarc-info``), ``verify`` (every file and row checked:
``diffarc-verify``). docs/inspecting.md says what each reports."""
