"""The authors' flow and combo files, and the input their test.py builds from them."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from authors_demo import EXAMPLE, load_demo_rgb8, needs_demo

from deepexemplar_core.authors.formats import (
    Combo,
    ComboFormatError,
    read_combo,
    read_flow,
    write_combo,
    write_flow,
)
from deepexemplar_core.authors.replay import (
    combo_from_flows,
    finish_authors_output,
    prepare_authors_input,
)
from deepexemplar_core.structures import Similarity


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images, peak 255, over all channels and pixels."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


# ---------------------------------------------------------------- flows


@needs_demo
def test_read_flow_known_lines_and_byte_exact_round_trip(tmp_path):
    source = EXAMPLE / "flow" / "in1_ref1.txt"
    nnf = read_flow(source, (256, 340))
    assert nnf.shape == (1, 256, 340, 2) and nnf.dtype == torch.int64
    first, last = source.read_text().split("\n")[0], source.read_text().split("\n")[-2]
    assert first == "0 0" and last == "-184 -108"
    assert nnf[0, 0, 0].tolist() == [0, 0]
    assert nnf[0, 255, 339].tolist() == [255 - 108, 339 - 184]
    # Every match lands inside ref1 (256 x 383).
    assert nnf[..., 0].min() >= 0 and nnf[..., 0].max() < 256
    assert nnf[..., 1].min() >= 0 and nnf[..., 1].max() < 383
    write_flow(tmp_path / "copy.txt", nnf)
    assert (tmp_path / "copy.txt").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.txt"]  # no temporary left


def test_flow_round_trip_of_an_arbitrary_field(tmp_path):
    gen = torch.Generator().manual_seed(0)
    nnf = torch.randint(-5, 40, (1, 7, 9, 2), generator=gen)
    write_flow(tmp_path / "f.txt", nnf)
    assert torch.equal(read_flow(tmp_path / "f.txt", (7, 9)), nnf)
    lines = (tmp_path / "f.txt").read_text().split("\n")
    dx, dy = (int(v) for v in lines[9 + 2].split())  # pixel (y 1, x 2)
    assert (nnf[0, 1, 2, 0].item(), nnf[0, 1, 2, 1].item()) == (1 + dy, 2 + dx)


def test_read_flow_rejects_wrong_size_and_garbage(tmp_path):
    write_flow(tmp_path / "f.txt", torch.zeros(1, 4, 5, 2, dtype=torch.int64))
    with pytest.raises(ComboFormatError, match="expected 50"):
        read_flow(tmp_path / "f.txt", (5, 5))
    (tmp_path / "bad.txt").write_text("0 0\n1 x\n")
    with pytest.raises(ComboFormatError, match="non-integer"):
        read_flow(tmp_path / "bad.txt", (1, 2))
    with pytest.raises(ValueError, match="size"):
        read_flow(tmp_path / "f.txt", (0, 5))
    with pytest.raises(TypeError, match="integer"):
        write_flow(tmp_path / "g.txt", torch.zeros(1, 4, 5, 2))


# ---------------------------------------------------------------- combos


@needs_demo
def test_read_combo_demo_layout_and_rgb_order():
    from PIL import Image

    path = EXAMPLE / "combo_new" / "in1_ref1.combo"
    combo = read_combo(path)
    assert combo.size == (256, 340) and combo.num_levels == 5
    assert combo.err_ba.shape == combo.err_ab.shape == (5, 256, 340)
    data = path.read_bytes()
    assert struct.unpack("<ii", data[:8]) == (256, 340)
    # Independent decode of the first blob with PIL: OpenCV wrote a standard RGB PNG from its
    # BGR matrix, so PIL's RGB must equal ours (a missing BGR -> RGB swap would fail here).
    (size,) = struct.unpack("<i", data[8:12])
    stored = np.asarray(Image.open(io.BytesIO(data[12 : 12 + size])).convert("RGB"))
    np.testing.assert_array_equal(combo.warp_ba.permute(1, 2, 0).numpy(), stored)
    assert stored[0, 0].tolist() == [12, 92, 187]  # the blue sky of the Golden Gate photo
    # The target (in1) is a gray photo, the warp is not: the channels must differ somewhere.
    assert not torch.equal(combo.warp_ba[0], combo.warp_ba[2])


@needs_demo
def test_combo_round_trip_keeps_every_pixel(tmp_path):
    original = EXAMPLE / "combo_new" / "ref1_in1.combo"
    combo = read_combo(original)
    write_combo(tmp_path / "copy.combo", combo)
    again = read_combo(tmp_path / "copy.combo")
    for name in ("warp_ba", "warp_aba", "err_ba", "err_ab"):
        assert torch.equal(getattr(combo, name), getattr(again, name)), name
    written = (tmp_path / "copy.combo").read_bytes()
    assert written[:8] == original.read_bytes()[:8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.combo"]


@needs_demo
def test_combo_from_demo_flows_reproduces_the_demo_combo(tmp_path):
    target, reference = load_demo_rgb8("in1"), load_demo_rgb8("ref1")
    demo = read_combo(EXAMPLE / "combo_new" / "in1_ref1.combo")
    flow_tr = read_flow(EXAMPLE / "flow" / "in1_ref1.txt", target.shape[2:])
    flow_rt = read_flow(EXAMPLE / "flow" / "ref1_in1.txt", reference.shape[2:])
    sim = Similarity(
        sim_tr=1 - demo.err_ba[None].float() / 255,
        sim_rt=1 - demo.err_ab[None].float() / 255,
        err_tr=demo.err_ba[None],
        err_rt=demo.err_ab[None],
        level_names=("conv5_1", "conv4_1", "conv3_1", "conv2_1", "conv1_1"),
    )
    combo = combo_from_flows(target, reference, flow_tr, flow_rt, sim)
    write_combo(tmp_path / "ours.combo", combo)
    ours = read_combo(tmp_path / "ours.combo")
    for name in ("warp_ba", "warp_aba", "err_ba", "err_ab"):
        assert torch.equal(getattr(ours, name), getattr(demo, name)), name
    bare = combo_from_flows(target, reference, flow_tr, flow_rt, None)
    write_combo(tmp_path / "bare.combo", bare)
    assert read_combo(tmp_path / "bare.combo").num_levels == 0


def test_read_combo_rejects_truncated_and_odd_files(tmp_path):
    rgb = torch.randint(0, 256, (3, 6, 5), dtype=torch.uint8)
    err = torch.randint(0, 256, (2, 6, 5), dtype=torch.uint8)
    write_combo(tmp_path / "ok.combo", Combo(rgb, rgb, err, err))
    data = (tmp_path / "ok.combo").read_bytes()
    (tmp_path / "cut.combo").write_bytes(data[:-10])
    with pytest.raises(ComboFormatError, match="does not fit"):
        read_combo(tmp_path / "cut.combo")
    (tmp_path / "short.combo").write_bytes(data[:5])
    with pytest.raises(ComboFormatError, match="header"):
        read_combo(tmp_path / "short.combo")
    (tmp_path / "wrong.combo").write_bytes(struct.pack("<ii", 7, 5) + data[8:])
    with pytest.raises(ComboFormatError, match=r"header says 5x7 \(width x height\)"):
        read_combo(tmp_path / "wrong.combo")
    with pytest.raises(ValueError, match="Combo.err_ab"):
        Combo(rgb, rgb, err, err[:1])
    with pytest.raises(TypeError, match="uint8"):
        Combo(rgb.float(), rgb, err, err)


# ---------------------------------------------------------------- their test.py input


def write_pair(tmp_path, target_rgb: np.ndarray, warp_rgb: np.ndarray, err_ba, err_ab) -> tuple:
    from PIL import Image

    Image.fromarray(target_rgb).save(tmp_path / "t.png")
    combo = Combo(
        torch.from_numpy(warp_rgb.transpose(2, 0, 1).copy()),
        torch.from_numpy(warp_rgb.transpose(2, 0, 1).copy()),
        err_ba,
        err_ab,
    )
    write_combo(tmp_path / "t_r.combo", combo)
    return tmp_path / "t.png", tmp_path / "t_r.combo"


def constant_errors(height, width, offset):
    """Level i holds ``offset + 10 i`` everywhere: the channel order becomes visible."""
    values = torch.tensor([offset + 10 * i for i in range(5)], dtype=torch.uint8)
    return values.view(5, 1, 1).expand(5, height, width).contiguous()


def test_prepare_input_channel_order_and_values_without_resizing(tmp_path):
    from skimage import color, data

    target = data.chelsea()[:64, :96]
    warp = data.astronaut()[:64, :96]
    paths = write_pair(
        tmp_path, target, warp, constant_errors(64, 96, 0), constant_errors(64, 96, 100)
    )
    got = prepare_authors_input(*paths, short_size=0)
    assert got.net_input.shape == (1, 13, 64, 96) and got.work_size == got.size == (64, 96)
    x = got.net_input[0]
    np.testing.assert_array_equal(
        x[0].numpy(), color.rgb2lab(target)[..., 0].astype(np.float32) - 50
    )
    np.testing.assert_array_equal(
        x[1:3].numpy(), color.rgb2lab(warp)[..., 1:].transpose(2, 0, 1).astype(np.float32)
    )
    want = [(10 * i - 127) / 2 for i in range(5)] + [(100 + 10 * i - 127) / 2 for i in range(5)]
    assert [float(x[3 + i].unique()) for i in range(10)] == want
    assert torch.equal(got.l_centered[0, 0], x[0])


def test_prepare_input_resizes_short_side_then_floors_to_multiples_of_8(tmp_path):
    from skimage import data

    target = data.chelsea()[:300, :200]
    paths = write_pair(
        tmp_path, target, target, constant_errors(300, 200, 0), constant_errors(300, 200, 50)
    )
    got = prepare_authors_input(*paths, short_size=100)
    # PIL resize to width 100, height round(100 * 300 / 200) = 150; floor to 144 x 96.
    assert got.size == (150, 100) and got.work_size == (144, 96)
    assert got.net_input.shape == (1, 13, 144, 96) and got.l_centered.shape == (1, 1, 150, 100)
    want = [(10 * i - 127) / 2 for i in range(5)] + [(50 + 10 * i - 127) / 2 for i in range(5)]
    for i, value in enumerate(want):
        assert torch.allclose(got.net_input[0, 3 + i], torch.tensor(value), atol=1e-4)
    assert got.net_input[0, 0].min() >= -50 and got.net_input[0, 0].max() <= 50


def test_finish_output_rebuilds_the_target_from_its_own_ab(tmp_path):
    from skimage import data

    target = data.coffee()[:203, :301]  # not multiples of 8: exercises both resizes
    errs = constant_errors(203, 301, 0)
    paths = write_pair(tmp_path, target, target, errs, errs)
    prepared = prepare_authors_input(*paths, short_size=0)
    assert prepared.work_size == (200, 296)
    rebuilt = finish_authors_output(prepared.net_input[:, 1:3], prepared)
    assert rebuilt.shape == (1, 3, 203, 301) and rebuilt.dtype == torch.uint8
    assert psnr(rebuilt[0].permute(1, 2, 0).numpy(), target) > 35
    with pytest.raises(ValueError, match="ab_pred"):
        finish_authors_output(prepared.net_input[:, 1:3, :8], prepared)


@needs_demo
def test_prepare_input_on_the_demo_pair():
    got = prepare_authors_input(
        EXAMPLE / "input" / "in1.jpg", EXAMPLE / "combo_new" / "in1_ref1.combo"
    )
    assert got.size == (256, 340) and got.work_size == (256, 336)
    assert got.net_input.shape == (1, 13, 256, 336)
    errors = got.net_input[0, 3:]
    assert errors.min() >= -63.5 and errors.max() <= 64
    # Coarse levels are less similar than fine ones in this pair (mean err, file order).
    assert errors[0].mean() > errors[3].mean()


@needs_demo
def test_colorize_from_combo_runs_their_test_chain():
    """The one-call chain equals prepare -> net -> finish, at the size of their res files."""
    from deepexemplar_core.authors.replay import colorize_from_combo
    from deepexemplar_core.colorizers.colornet import ExampleColorNet

    torch.manual_seed(0)
    net = ExampleColorNet().eval()
    target, combo = EXAMPLE / "input" / "in1.jpg", EXAMPLE / "combo_new" / "in1_ref1.combo"
    got = colorize_from_combo(target, combo, net)
    prepared = prepare_authors_input(target, combo)
    with torch.no_grad():
        want = finish_authors_output(net(prepared.net_input), prepared)
    assert torch.equal(got, want)
    res = EXAMPLE / "res"
    sizes = {p.stem: p for p in res.glob("in1_ref1.*")}
    if sizes:
        from PIL import Image

        with Image.open(next(iter(sizes.values()))) as theirs:
            assert (got.shape[-1], got.shape[-2]) == theirs.size
