"""The archive as a PyTorch dataset (``pipeline.read.dataset``): a real DataLoader with 2 workers and two
simulated ranks reads every row exactly once, resumes mid-epoch with the rows not yet seen, skips or
raises on error rows; the map-style view; a cdc-avif row decoded by its network in the workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shardkit import archive_corpus, image_bytes, photo, reading_corpus, write_shard

from model import load_codec
from pipeline import ArchiveDataset, RowError
from pipeline.read.dataset import ArchiveLoader, ArchiveMapDataset

IMAGE_KEYS = {f"a{i}" for i in range(5)} | {f"b{i}" for i in range(6)} | {"alpha"}  # rows that give an image


def to_tensor(img):
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    reading_corpus(root / "in")
    archive_corpus(root / "in", str(root / "archive"), load_codec("jpeg-q60"))  # 7 units of 1-2 rows
    return str(root / "archive")


def keys_of(batches) -> list[str]:
    return [k for b in batches for k in b["key"]]


def test_two_ranks_of_two_workers_read_every_row_exactly_once(archive, capfd):
    per_rank = []
    for rank in (0, 1):
        ds = ArchiveDataset(archive, shuffle=True, seed=5, rank=rank, world_size=2, transform=to_tensor, buffer_size=3)
        batches = list(ArchiveLoader(ds, batch_size=2, num_workers=2))
        assert all(b["image"].shape[1:] == (3, 48, 64) for b in batches)  # stacked tensors
        per_rank.append(keys_of(batches))
    assert sorted(per_rank[0] + per_rank[1]) == sorted(IMAGE_KEYS)  # once each: no overlap, none missing
    assert per_rank[0] and per_rank[1]
    err = capfd.readouterr().err  # the workers say what they skipped
    assert "skipping 'broken'" in err and "archived as an error row" in err and "skipping 'no-image'" in err


def test_the_order_is_seeded_and_changes_with_the_epoch(archive):
    ds = ArchiveDataset(archive, shuffle=True, seed=5, buffer_size=3)
    first = [s["key"] for s in ds]
    assert [s["key"] for s in ds] == first and sorted(first) == sorted(IMAGE_KEYS) and ds.skipped == 4
    ds.set_epoch(1)
    assert [s["key"] for s in ds] != first
    stored = [f"a{i}" for i in range(5)] + ["alpha"] + [f"b{i}" for i in range(6)]
    assert [s["key"] for s in ArchiveDataset(archive)] == stored  # unshuffled: stored order


def test_resume_after_a_mid_epoch_state_gives_the_remaining_rows_only(archive):
    def make():
        ds = ArchiveDataset(archive, shuffle=True, seed=9, buffer_size=3)
        ds.set_epoch(2)
        return ds

    ds = make()
    loader = iter(ArchiveLoader(ds, batch_size=2, num_workers=2))
    seen = keys_of([next(loader), next(loader), next(loader)])
    state = ds.state_dict()
    del loader  # the workers had read ahead: the state counts what this process got, no more
    assert state["epoch"] == 2 and sum(state["positions"].values()) >= len(seen) == 6
    resumed = make()
    resumed.load_state_dict(state)
    rest = keys_of(ArchiveLoader(resumed, batch_size=2, num_workers=2))
    assert sorted(seen + rest) == sorted(IMAGE_KEYS) and not set(seen) & set(rest)
    again = make()
    again.load_state_dict(state)
    with pytest.raises(ValueError, match="2 DataLoader workers, not 1"):
        next(iter(ArchiveLoader(again, batch_size=2, num_workers=1)))


def test_errors_raise_when_asked_and_the_map_style_view_indexes_every_row(archive):
    with pytest.raises(RowError) as caught:
        list(ArchiveDataset(archive, errors="raise"))
    assert caught.value.key == "broken" and caught.value.error.startswith("archived as an error row: ")
    view = ArchiveMapDataset(archive, transform=to_tensor)
    assert len(view) == 14 and sorted(view.keys) == sorted(IMAGE_KEYS | {"broken", "no-image"})
    i = view.keys.index("b3")
    assert view[i]["key"] == "b3" and view[i]["image"].shape == (3, 48, 64) and view[i]["meta"]["stored_as"] == "codec"
    with pytest.raises(RowError):
        view[view.keys.index("broken")]


def test_a_cdc_avif_row_decodes_with_its_network_in_the_workers(tmp_path):
    from model import random_codec
    from model.nn.weights_file import save_weights

    weights = tmp_path / "weights"
    weights.mkdir()
    save_weights(random_codec("cdc-avif-tiny").model, weights / "cdc-avif-tiny.safetensors",
                 {"name": "cdc-avif-tiny", "description": "random, for tests", "steps_trained": 0, "default_steps": 1})
    write_shard(tmp_path / "in" / "shard-000000.tar", [("one", {"jpg": image_bytes(photo(64, 48), "JPEG")})])
    archive_corpus(tmp_path / "in", str(tmp_path / "archive"), load_codec(weights / "cdc-avif-tiny.safetensors"))
    ds = ArchiveDataset(str(tmp_path / "archive"), weights_dir=str(weights), steps=1, errors="raise")
    [batch] = list(ArchiveLoader(ds, batch_size=1, num_workers=1))
    assert batch["key"] == ["one"] and batch["image"][0].size == (64, 48)
    assert batch["meta"][0]["codec_id"].startswith("cdc-avif-tiny@")
