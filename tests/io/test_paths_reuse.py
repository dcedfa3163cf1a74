"""An input's inode, reused by a new file after the input is deleted, does not block writing the new file."""

from __future__ import annotations

import os

import pytest

from portraitfx.errors import OutputError
from portraitfx.io.paths import check_output_path, register_input


def test_a_reused_inode_of_a_deleted_input_is_not_an_input(tmp_path):
    gone = tmp_path / "input.png"
    gone.write_bytes(b"x")
    register_input(gone)
    ino = os.stat(gone).st_ino
    gone.unlink()
    # make files until the file system hands the inode out again (usually at once on tmpfs/ext4)
    for i in range(200):
        new = tmp_path / f"out{i}.bin"
        new.write_bytes(b"y")
        if os.stat(new).st_ino == ino:
            assert check_output_path(new) == new
            break
    # a hard link to a live input is still protected
    live = tmp_path / "live.png"
    live.write_bytes(b"z")
    register_input(live)
    link = tmp_path / "link.png"
    os.link(live, link)
    with pytest.raises(OutputError):
        check_output_path(link)
