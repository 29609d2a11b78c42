"""Where bytes live and how work fails: storage (local, s3://), WebDataset shards, faults, batches
that halve on out-of-memory, child processes. The bottom layer: training and evaluation read through it too."""
