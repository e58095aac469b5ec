from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gravityml.data import SKLEARN_DATASETS, load_dataset, read_source, read_table, write_table
from gravityml.errors import DataError
from gravityml.spec import load_spec

FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"], "y": [0, 1, 0]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_round_trip_each_format_with_a_fingerprint(tmp_path: Path, suffix: str) -> None:
    path = write_table(FRAME, tmp_path / f"rows{suffix}")
    table = read_table(str(path))
    pd.testing.assert_frame_equal(table.frame, FRAME, check_dtype=False)
    assert table.fingerprint.startswith("sha256:") and len(table.fingerprint) == 71
    assert table.uri == path.resolve().as_uri()
    again = read_table(path.resolve().as_uri())  # file:// URIs read the same bytes
    assert again.fingerprint == table.fingerprint


def test_fingerprint_changes_when_one_byte_changes(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    FRAME.to_csv(path, index=False)
    first = read_table(str(path)).fingerprint
    path.write_text(path.read_text().replace("3.0", "3.5"))
    assert read_table(str(path)).fingerprint != first


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    class Boom(pd.DataFrame):
        def to_csv(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            Path(args[0]).write_text("half")  # type: ignore[arg-type]
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_table(Boom(FRAME), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_inputs_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_table(str(tmp_path / "missing.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_table(str(tmp_path / "empty.csv"))
    (tmp_path / "rows.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"cannot tell the format.*allowed: \[.*'.parquet'"):
        read_table(str(tmp_path / "rows.xlsx"))
    (tmp_path / "bad.parquet").write_text("not parquet at all")
    with pytest.raises(DataError, match="could not be read as parquet"):
        read_table(str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=r"cannot write 'out.txt'"):
        write_table(FRAME, tmp_path / "out.txt")


@pytest.mark.parametrize("name", ["breast_cancer", "digits", "iris", "wine", "diabetes"])
def test_sklearn_datasets_ship_with_a_target_column(name: str) -> None:
    assert name in SKLEARN_DATASETS
    table = read_source(f"sklearn:{name}")
    assert "target" in table.frame.columns and len(table.frame) > 100
    assert table.fingerprint == read_source(f"sklearn:{name}").fingerprint


def test_unknown_sklearn_dataset_suggests() -> None:
    with pytest.raises(DataError, match=r"'sklearn:irs' is not a dataset .*did you mean 'iris'"):
        read_source("sklearn:irs")


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobs" / "data").mkdir(parents=True)
    FRAME.to_csv(tmp_path / "jobs" / "data" / "rows.csv", index=False)
    spec_path = tmp_path / "jobs" / "job.yaml"
    spec_path.write_text(
        "name: j\ntask: supervised\ndata: {source: data/rows.csv, target: y}\nmodel: {type: knn}\n"
    )
    monkeypatch.chdir(tmp_path)
    dataset = load_dataset(load_spec(spec_path))
    assert len(dataset.frame) == 3


def test_s3_source_reads_from_a_real_s3_compatible_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="lake")
        s3.put_object(Bucket="lake", Key="tables/rows.csv", Body=FRAME.to_csv(index=False).encode())
        table = read_table("s3://lake/tables/rows.csv")
        pd.testing.assert_frame_equal(table.frame, FRAME, check_dtype=False)
        assert table.uri == "s3://lake/tables/rows.csv"
        with pytest.raises(DataError, match="could not be read"):
            read_table("s3://lake/tables/missing.csv")
    finally:
        server.stop()


# ---- what pandas would accept silently ---------------------------------------------------------


def test_a_column_name_given_twice_is_refused_not_renamed(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,amount,amount\n1,2,3\n")
    with pytest.raises(DataError, match=r"the header row names 'amount' more than once \(columns 2, 3\); "
                                        r"allowed: 'each column name once'; got: \['amount'\]\. To fix: "):
        read_table(str(path))


def test_a_column_really_named_like_a_pandas_rename_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("amount,amount.1\n1,2\n")
    assert list(read_table(str(path)).frame.columns) == ["amount", "amount.1"]


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity"])
def test_infinite_numbers_are_refused_naming_column_and_row(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"a,b\n1,2\n3,{cell}\n5,6\n")
    with pytest.raises(DataError, match=r"column 'b', row 2: -?inf is not a finite number \(1 such cell in all\); "
                                        r"allowed: 'finite numbers, or an empty cell for a missing value'"):
        read_table(str(path), role="input")


def test_a_headerless_csv_reads_with_the_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("1,x,0\n2,y,1\n")
    frame = read_table(str(path), columns=["a", "b", "y"]).frame
    assert list(frame.columns) == ["a", "b", "y"] and len(frame) == 2  # the first row is data, not a header
    with pytest.raises(DataError, match=r"data.columns names 2 columns but the rows hold 3; allowed: '3 names'"):
        read_table(str(path), columns=["a", "b"])


def test_headerless_csv_through_a_spec(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    spec = load_spec({"name": "h", "task": "supervised", "model": {"type": "knn"},
                      "data": {"source": "rows.csv", "target": "y", "header": False, "columns": ["a", "b", "y"]}})
    spec = spec.with_base_dir(tmp_path)
    dataset = load_dataset(spec)
    assert dataset.features == ["a", "b"] and len(dataset.frame) == 20


def test_whole_number_columns_with_blanks_are_found(tmp_path: Path) -> None:
    from gravityml.data import whole_number_columns

    path = tmp_path / "rows.csv"
    path.write_text("count,price,full\n3,1.5,1\n,2.0,2\n7,,3\n")
    frame = read_table(str(path)).frame
    assert whole_number_columns(frame) == ["count"]  # price has a fraction; full has no blank (already int)


def test_outputs_are_checked_before_any_work(tmp_path: Path) -> None:
    from gravityml.data import check_folder_writable, check_writable

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DataError, match=r"folder '.*a-file/sub' cannot be made: '.*a-file' is a file; allowed: "):
        check_writable(blocker / "sub" / "out.csv")
    with pytest.raises(DataError, match=r"is a folder; allowed: 'a file name'"):
        check_writable(tmp_path / "dir.csv") if (tmp_path / "dir.csv").mkdir() is None else None
    assert check_writable(tmp_path / "new" / "deeper" / "out.csv").name == "out.csv"  # made when written
    assert check_folder_writable(tmp_path / "new") == tmp_path / "new"
