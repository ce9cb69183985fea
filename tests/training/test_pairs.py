"""Pairs: the chrominance target T' follows the formula, the shards hold what the pipeline computes."""

from __future__ import annotations

import json

import torch

from training.dataset import PairShards, item_to_lab
from training.pairs import build_pairs, chrominance_reference, compute_pair, plan_pairs


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")


def test_chrominance_reference_is_the_cycled_lookup_for_hand_made_translations():
    """T'(p) = T(phi_R->T(phi_T->R(p))) exactly, for translation fields (patch vote is exact)."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (1, 3, 12, 14), dtype=torch.uint8, generator=gen)
    ys, xs = _grid(12, 14)
    nnf_tr = torch.stack((ys + 3, xs + 1), dim=-1)[None]          # into a 16 x 18 reference
    ry, rx = _grid(16, 18)
    nnf_rt = torch.stack(((ry - 2).clamp(0, 11), (rx - 4).clamp(0, 13)), dim=-1)[None]
    cycled = chrominance_reference(target, nnf_tr, nnf_rt)
    # By hand: p -> (y + 3, x + 1) -> (y + 1, x - 3) clamped to the target.
    expected = target[0][:, (ys + 1).clamp(0, 11), (xs - 3).clamp(0, 13)]
    # Where no clamp bends the translation for p or its 3x3 neighbours, every vote agrees.
    inner = (xs >= 4) & (ys <= 9)
    assert torch.equal(cycled[0][:, inner], expected[:, inner])
    assert not torch.equal(cycled[0], target[0])  # the cycle really moved colours


def test_chrominance_reference_general_field_equals_indexing_with_a_one_pixel_vote():
    """For arbitrary fields the cycle is the composed lookup (checked with the 1x1 vote)."""
    from deepexemplar_core.warp import cycle_colors

    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, 256, (2, 3, 9, 11), dtype=torch.uint8, generator=gen)
    nnf_tr = torch.stack((torch.randint(0, 7, (2, 9, 11), generator=gen),
                          torch.randint(0, 8, (2, 9, 11), generator=gen)), dim=-1)
    nnf_rt = torch.stack((torch.randint(0, 9, (2, 7, 8), generator=gen),
                          torch.randint(0, 11, (2, 7, 8), generator=gen)), dim=-1)
    cycled = cycle_colors(target, nnf_tr, nnf_rt, patch_size=1)
    for b in range(2):
        q = nnf_rt[b][nnf_tr[b][..., 0], nnf_tr[b][..., 1]]          # phi_R->T(phi_T->R(p))
        assert torch.equal(cycled[b], target[b][:, q[..., 0], q[..., 1]])


def test_shards_hold_the_pipeline_quantities(pairs_dir):
    """Each stored pair is our matcher's output: re-matching gives the same bytes, and the
    chrominance input is T cycled through the stored fields."""
    from deepexemplar_core import load_models

    data = PairShards(pairs_dir)
    manifest = json.loads((pairs_dir / "manifest.json").read_text())
    assert len(data) == 8 and manifest["complete"]
    backbone = manifest["backbone"]
    assert backbone["family"] == "lite" and len(backbone["weights_sha256"]) == 64
    from training.pairs import tensors_sha256

    assert backbone["tensors_sha256"] == tensors_sha256(load_models("lite").backbone)
    assert manifest["kinds"]["self"] >= 1 and manifest["kinds"]["self"] < 8
    models = load_models("lite", colorizer="propagation")
    for index in (0, 5):
        raw = data.raw(index)
        again = compute_pair(models, raw["target_rgb8"], raw["reference_rgb8"], 64)
        for key in ("warped_rgb8", "cycled_rgb8", "err_tr", "err_rt", "nnf_tr", "nnf_rt"):
            assert torch.equal(again[key], raw[key]), key
        cycled = chrominance_reference(raw["target_rgb8"][None], raw["nnf_tr"][None].long(),
                                       raw["nnf_rt"][None].long())
        assert torch.equal(cycled[0], raw["cycled_rgb8"])
        item = data[index]
        lab = item_to_lab({k: raw[k] for k in ("target_rgb8", "warped_rgb8", "cycled_rgb8",
                                                "err_tr", "err_rt")})
        assert torch.equal(item["cycled_ab"], lab["cycled_ab"])
        # Self-references and real pairs both carry most of the target's colours back.
        err = (item["cycled_ab"] - item["target_ab"]).abs().mean()
        assert err < (item["target_ab"] - item["target_ab"].mean(dim=(1, 2), keepdim=True)).abs().mean() * 2


def test_rerun_skips_finished_shards(photo_dir, pairs_dir):
    manifest = build_pairs(photo_dir, pairs_dir, size=64, pairs_per_image=2, shard_size=4,
                           self_share=0.5, similar_share=0.5, top_k=2, seed=1)
    assert manifest["pairs_matched_last_run"] == 0 and manifest["complete"]


def test_plan_shares_follow_the_options():
    d = torch.nn.functional.normalize(torch.randn(40, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    plans = plan_pairs(d, [""] * 40, 25, self_share=0.25, similar_share=0.5, top_k=5, seed=3)
    kinds = [p.kind for p in plans]
    assert abs(kinds.count("self") / 1000 - 0.25) < 0.05
    assert abs(kinds.count("similar") / 1000 - 0.375) < 0.05
    nearest = (d @ d.T).fill_diagonal_(-2).argsort(dim=1, descending=True)[:, :5]
    assert all(p.reference in nearest[p.target].tolist() for p in plans if p.kind == "similar")
    assert all(p.reference != p.target for p in plans if p.kind != "self")
