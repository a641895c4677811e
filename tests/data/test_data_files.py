"""The user's own files: every format reads, and every mistake gets one clear error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest

from sae_interp.data import DataFileError, iter_conversations, iter_texts, load_instructions

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def test_txt_is_one_document_per_line_and_blank_lines_are_skipped(tmp_path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("first prompt\n\n  \nsecond prompt\nthird\n", encoding="utf-8")
    assert load_instructions(path) == ["first prompt", "second prompt", "third"]
    assert load_instructions(str(path)) == load_instructions(path)


def test_user_file_splits_partition_it(tmp_path) -> None:
    path = tmp_path / "many.txt"
    path.write_text("".join(f"prompt {i}\n" for i in range(50)), encoding="utf-8")
    train, test = load_instructions(path, split="train"), load_instructions(path, split="test")
    assert len(test) == 10 and sorted(train + test) == sorted(load_instructions(path))


def test_jsonl_texts_and_conversations(tmp_path) -> None:
    texts = _jsonl(tmp_path / "t.jsonl", [{"text": "a doc"}, {"text": "another", "extra": 1}])
    assert list(iter_texts(texts)) == ["a doc", "another"]
    chats = _jsonl(tmp_path / "c.jsonl", [{"messages": MESSAGES}, {"messages": MESSAGES[:1]}])
    assert list(iter_conversations(chats)) == [MESSAGES, MESSAGES[:1]]


def test_json_list_of_strings_or_records(tmp_path) -> None:
    path = tmp_path / "docs.json"
    path.write_bytes(orjson.dumps(["plain", {"text": "as record"}, ""]))
    assert list(iter_texts(path)) == ["plain", "as record"]
    path.write_bytes(orjson.dumps([{"messages": MESSAGES}]))
    assert list(iter_conversations(path)) == [MESSAGES]


def test_hf_datasets_folder(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")

    def table(columns: dict[str, list[object]]):
        # A fixed fingerprint: from_dict hashes its input with dill, which fails on some
        # datasets/pyarrow pairs (5.2.0 with 26.0.1) for reasons unrelated to reading.
        return datasets.Dataset(datasets.table.InMemoryTable.from_pydict(columns), fingerprint="test")

    table({"text": ["one", "two"], "id": [1, 2]}).save_to_disk(str(tmp_path / "ds"))
    assert list(iter_texts(tmp_path / "ds")) == ["one", "two"]
    datasets.DatasetDict({"train": table({"messages": [MESSAGES]})}).save_to_disk(str(tmp_path / "dd"))
    assert list(iter_conversations(tmp_path / "dd")) == [MESSAGES]
    datasets.DatasetDict({"validation": table({"text": ["x"]})}).save_to_disk(str(tmp_path / "nv"))
    with pytest.raises(DataFileError, match=r"without a 'train' split \(\['validation'\]\)"):
        list(iter_texts(tmp_path / "nv"))
    table({"body": ["x"]}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataFileError, match=r"no 'text' or 'messages' column \(found \['body'\]\)"):
        list(iter_texts(tmp_path / "bad"))


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets is installed")
def test_hf_folder_without_datasets_says_how_to_install(tmp_path) -> None:
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(ImportError, match="pip install datasets"):
        list(iter_texts(tmp_path))


def test_missing_path_names_it_and_the_choices(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt' is neither a data set name \(harmful, harmless"):
        load_instructions(tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", "\n\n", r"empty\.txt holds no documents"),
        ("empty.jsonl", "", r"empty\.jsonl holds no documents"),
        ("empty.json", "[]", r"empty\.json holds no documents"),
        (
            "field.jsonl",
            '{"text": "ok"}\n{"txt": "typo"}\n',
            r"field\.jsonl:2: no 'text' or 'messages' field",
        ),
        ("type.json", '[{"text": 3}]', r"type\.json:1: got int"),
        ("role.jsonl", '{"messages": [{"role": "bot", "content": "x"}]}', r"role\.jsonl:1: message 0 is"),
        ("nolist.jsonl", '{"messages": "hi"}', r"'messages' must be a non-empty list"),
        ("broken.jsonl", '{"text": "ok"}\n{"text": \n', r"broken\.jsonl:2: not valid JSON"),
        ("dict.json", '{"text": "x"}', r"dict\.json: holds a dict, not a list"),
        (
            "table.csv",
            "text\nx\n",
            r"table\.csv: unsupported file type; use one of \['\.json', '\.jsonl', '\.txt'\]",
        ),
    ],
)
def test_bad_files_get_one_clear_error(tmp_path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=message):
        list(iter_texts(path))


def test_plain_folder_is_not_mistaken_for_a_dataset(tmp_path) -> None:
    with pytest.raises(DataFileError, match="not one written by datasets' save_to_disk"):
        list(iter_texts(tmp_path))


def test_conversation_file_is_refused_as_instructions(tmp_path) -> None:
    path = _jsonl(tmp_path / "c.jsonl", [{"messages": MESSAGES}])
    with pytest.raises(TypeError, match=r"c\.jsonl holds conversations, not texts"):
        load_instructions(path)
