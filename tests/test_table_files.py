"""Reading a CSV table a person wrote (lmscale.io.table_files): labels stay text, each row keeps the line an
editor shows it on, and a file that is no table is named in one line with what to do. The same
probes through `lmscale import-testbed`: test_tables."""

from __future__ import annotations

import pytest

from lmscale.io.table_files import LINE, TableError, read_table

COLUMNS = ["model", "size", "loss"]


def write(tmp_path, content: bytes):
    path = tmp_path / "loss.csv"
    path.write_bytes(content)
    return path


def test_labels_stay_text_and_rows_keep_their_lines(tmp_path):
    # A byte-order mark, a blank line, and a quoted cell over two lines, as a spreadsheet may write them.
    path = write(tmp_path, '\ufeffmodel,size,loss\n007,0.150,3.5\n\n"a\nb",1.0,2.5\nc,2,1.5\n'.encode())
    table = read_table(path, COLUMNS)
    assert table["model"].tolist() == ["007", "a\nb", "c"] and table["size"].tolist() == ["0.150", "1.0", "2"]
    assert table["loss"].tolist() == [3.5, 2.5, 1.5]
    assert table[LINE].tolist() == [2, 4, 6]


@pytest.mark.parametrize("content,message", [
    (b"", "loss.csv: line 1: the file is empty; a table starts with a header line naming its columns "
          "(model, size, loss)"),
    (b"model;size;loss\na;s;1\n", "loss.csv: line 1: read one column ('model;size;loss'); is the separator ';'? "
                                  "write the table comma-separated"),
    (b"model,size,loss\na,s,1\nb\xe9,s,2\n", "loss.csv: line 3: byte 0xe9 (byte 2 of the line) is not UTF-8 text"),
])
def test_a_file_that_is_no_table_is_named(tmp_path, content, message):
    with pytest.raises(TableError) as refused:
        read_table(write(tmp_path, content), COLUMNS)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"missing file {tmp_path / 'loss.csv'}"):
        read_table(tmp_path / "loss.csv", COLUMNS)
