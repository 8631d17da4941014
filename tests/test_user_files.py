"""User files (persona panels, imported records): read as UTF-8 with or without BOM, every error names file,
line and field."""
import json

import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.dataset.personas import PersonaError, file_panel, load_panel
from polypersona_utils.user_files import UserFileError, read_rows

FIXTURES = paths.PROJECT_ROOT / "tests" / "fixtures"
PANEL = (FIXTURES / "panel.csv").read_text()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_excel_csv_with_byte_order_mark_loads(tmp_path):
    panel = file_panel(write(tmp_path, "panel.csv", b"\xef\xbb\xbf" + PANEL.encode()))
    assert [c.persona_id for c in panel.cards] == ["nurse-01", "farmer-02", "student-03"]


def test_non_utf8_panel_names_file_and_line(tmp_path):
    lines = PANEL.splitlines()
    lines[2] = lines[2].replace("farmer", "f\xe9rmier")
    path = write(tmp_path, "panel.csv", "\n".join(lines).encode("latin-1"))
    with pytest.raises(PersonaError, match=r"panel.csv: line 3: not UTF-8 text \(byte 0xe9"):
        file_panel(path)


def test_binary_panel_is_named(tmp_path):
    with pytest.raises(PersonaError, match=r"panel.jsonl: binary file"):
        file_panel(write(tmp_path, "panel.jsonl", b"\x00\x01\x02garbage"))


def test_row_with_more_cells_than_the_header(tmp_path):
    lines = PANEL.splitlines()
    lines[2] += ",surplus"
    columns = len(PANEL.splitlines()[0].split(","))
    with pytest.raises(PersonaError, match=rf"panel.csv: line 3: {columns + 1} cells but the header has {columns} "):
        file_panel(write(tmp_path, "panel.csv", "\n".join(lines) + "\n"))


def test_duplicated_column_is_an_error_not_the_last_one_silently(tmp_path):
    lines = PANEL.splitlines()
    lines = [line + ("," + line.split(",")[1]) if i else line + ",age" for i, line in enumerate(lines)]
    with pytest.raises(PersonaError, match=r"panel.csv: line 1: column\(s\) \['age'\] appear more than once"):
        file_panel(write(tmp_path, "panel.csv", "\n".join(lines) + "\n"))


def test_header_missing_several_columns_names_them_all(tmp_path):
    header, *rows = PANEL.splitlines()
    names = header.split(",")
    keep = [i for i, n in enumerate(names) if n not in ("gender", "region")]
    text = "\n".join(",".join(line.split(",")[i] for i in keep) for line in [header, *rows]) + "\n"
    with pytest.raises(PersonaError, match=r"line 1: missing column\(s\) \['gender', 'region'\]"):
        file_panel(write(tmp_path, "panel.csv", text))


def test_json_array_panel_is_read_as_a_list_with_line_numbers(tmp_path):
    rows = [{k: v for k, v in card.to_dict().items() if k not in ("source", "description")}
            for card in file_panel(FIXTURES / "panel.csv").cards]
    path = write(tmp_path, "panel.json", json.dumps(rows, indent=1))
    assert len(file_panel(path).cards) == len(rows)
    # A record with a bad field is named by the line it starts on.
    rows[1]["age"] = "old"
    text = "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n"
    with pytest.raises(PersonaError, match=r"panel.json: line 3: field 'age' must be a whole number"):
        file_panel(write(tmp_path, "panel.json", text))


def test_invalid_json_names_line(tmp_path):
    with pytest.raises(UserFileError, match=r"x.jsonl: line 2: not valid JSON"):
        read_rows(write(tmp_path, "x.jsonl", '{"a": 1}\n{"a": \n'))
    with pytest.raises(UserFileError, match=r"x.json: line 3: not valid JSON"):
        read_rows(write(tmp_path, "x.json", '[\n{"a": 1},\n{"a" 2}\n]'))


def test_relative_persona_path_resolves_against_the_project_root():
    relative = (FIXTURES / "panel.csv").relative_to(paths.PROJECT_ROOT)
    config = load_config("smoke", overrides={"personas.source": "file", "personas.path": str(relative),
                                             "personas.n_personas": 3})
    assert len(load_panel(config.personas, seed=1).cards) == 3
    missing = load_config("smoke", overrides={"personas.source": "file", "personas.path": "nowhere/panel.csv"})
    with pytest.raises(PersonaError, match=rf"personas.path: nowhere/panel.csv: file not found \(looked for "
                                           rf"{paths.PROJECT_ROOT}/nowhere/panel.csv\)"):
        load_panel(missing.personas, seed=1)
