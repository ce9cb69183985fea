"""A user's mistakes and repeated runs with the authors' formats and ``deepexemplar convert``."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from test_convert import random_video_vgg

from deepexemplar_core.authors.convert.converters import _save
from deepexemplar_core.authors.formats import ComboFormatError, read_flow
from deepexemplar_core.cli import EXIT_INPUT, main


def test_read_flow_with_an_integer_beyond_int64_is_a_format_error(tmp_path):
    path = tmp_path / "a_b.txt"
    path.write_text("99999999999999999999999 1\n0 0\n")
    with pytest.raises(ComboFormatError, match="integers beyond 64 bits; not a flow file"):
        read_flow(path, (1, 2))


def _metadata_keys(path) -> list[str]:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return list(json.loads(data[8 : 8 + length])["__metadata__"])


def test_the_same_conversion_writes_the_same_bytes(tmp_path):
    """safetensors keeps its metadata in a hash map: without sorting, the order (so the bytes
    and the printed sha256) changed from one run to the next."""
    src = tmp_path / "source é.pth"
    src.write_bytes(b"source")
    state = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.ones(4)}
    written = set()
    for i in range(12):
        target = _save(state, tmp_path / f"{i}.safetensors", network="Net", src=src, notes=[])
        assert _metadata_keys(target) == ["network", "source"]
        written.add(target.read_bytes())
    assert len(written) == 1

    from safetensors import safe_open

    with safe_open(str(target), "pt") as f:
        assert f.metadata() == {"network": "Net", "source": "source é.pth"}
        assert torch.equal(f.get_tensor("b"), state["b"])


@pytest.mark.parametrize("output", ["taken", "taken/w.safetensors", "taken/sub"])
def test_convert_to_a_path_under_a_file_names_it(tmp_path, capsys, output):
    src = tmp_path / "vgg19_gray.pth"
    torch.save(random_video_vgg(torch.Generator().manual_seed(1), False), src)
    (tmp_path / "taken").write_text("not a folder")
    assert main(["convert", str(src), "-o", str(tmp_path / output)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert f"output: {tmp_path / 'taken'} is a file, not a folder" in err
    assert "Traceback" not in err
    assert (tmp_path / "taken").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "vgg19_gray.pth"]


def test_size_messages_say_width_x_height(tmp_path):
    """Like every other message of the project (the header stores height then width)."""
    from deepexemplar_core.authors.formats import Combo, read_combo, write_combo
    from deepexemplar_core.authors.replay import prepare_authors_input

    rgb = torch.zeros(3, 4, 6, dtype=torch.uint8)  # 6 wide, 4 high
    err = torch.zeros(5, 4, 6, dtype=torch.uint8)
    write_combo(tmp_path / "t_r.combo", Combo(rgb, rgb, err, err))
    data = (tmp_path / "t_r.combo").read_bytes()
    (tmp_path / "wide.combo").write_bytes(struct.pack("<ii", 4, 9) + data[8:])
    with pytest.raises(ComboFormatError, match=r"blob 0 is 6x4, but the header says 9x4 \(width"):
        read_combo(tmp_path / "wide.combo")
    (tmp_path / "a_b.txt").write_text("0 0\n" * 6)
    with pytest.raises(ComboFormatError, match=r"of a 3x4 \(width x height\) source"):
        read_flow(tmp_path / "a_b.txt", (4, 3))

    from PIL import Image

    Image.new("RGB", (5, 4)).save(tmp_path / "t.png")
    with pytest.raises(ValueError, match="after resizing \\(width x height: 5x4, 6x4\\)"):
        prepare_authors_input(tmp_path / "t.png", tmp_path / "t_r.combo", short_size=0)


def test_a_plain_pickle_gives_one_error_line_and_no_torch_warning(tmp_path, capsys):
    import pickle
    import warnings

    src = tmp_path / "plain.pth"
    src.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the reader fails the test
        assert main(["convert", str(src), "-o", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: holds Python objects besides tensors")
    assert not (tmp_path / "o").exists()


def test_writers_name_a_missing_folder_not_their_temporary_file(tmp_path):
    from deepexemplar_core.authors.formats import Combo, write_combo, write_flow

    nnf = torch.zeros(1, 2, 3, 2, dtype=torch.int64)
    rgb = torch.zeros(3, 2, 3, dtype=torch.uint8)
    (tmp_path / "file").write_text("x")
    for folder in (tmp_path / "missing", tmp_path / "file"):
        with pytest.raises(ValueError, match=f"folder {folder} does not exist or is a file"):
            write_flow(folder / "a_b.txt", nnf)
        with pytest.raises(ValueError, match=f"folder {folder} does not exist or is a file"):
            write_combo(folder / "a_b.combo", Combo(rgb, rgb, rgb, rgb))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_png_blob_declaring_too_many_pixels_is_a_format_error(tmp_path):
    """OpenCV refuses a PNG over its pixel limit with cv2.error, which escaped read_combo."""
    import io
    import zlib

    from PIL import Image

    from deepexemplar_core.authors.formats import read_combo

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    blob = bytearray(buffer.getvalue())
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)  # 3.6e9 pixels declared
    blob[16:29] = ihdr
    blob[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = struct.pack("<ii", 60000, 60000) + 2 * (struct.pack("<i", len(blob)) + bytes(blob))
    (tmp_path / "big.combo").write_bytes(data)
    with pytest.raises(ComboFormatError, match="the warp_ba blob cannot be decoded"):
        read_combo(tmp_path / "big.combo")


def test_kind_gray_vgg_on_a_pytorch_file_says_what_it_is(tmp_path, capsys):
    """It was parsed as protobuf: 'not a readable caffemodel: unsupported wire type ...'."""
    src = tmp_path / "example_net.pth"
    torch.save({"conv10_ab.weight": torch.zeros(2)}, src, _use_new_zipfile_serialization=False)
    assert main(["convert", str(src), "--kind", "gray-vgg", "-o", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "not a .caffemodel; leave --kind out (auto) or pass --kind colornet" in err
    assert not (tmp_path / "o").exists()
