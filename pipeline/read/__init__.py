"""Reading an archive in place (docs/reading.md): ``archive`` (``open_archive``: a key -> sample mapping
that reads one row group per lookup), ``restoring`` (a row back into its image, in this process),
``dataset`` (PyTorch: ``ArchiveDataset``, ``ArchiveLoader``, ``ArchiveMapDataset``), ``ray_data``
(``read_archive``: a Ray Data dataset of decoded rows). The key index itself is ``records.index``."""
