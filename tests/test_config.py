from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ConfigError, load_config

MINIMAL = """\
cameras:
  - id: cam1
    source: clips/demo.mp4
alerts:
  insecure: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_working_defaults_and_resolves_paths(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    camera = config.cameras[0]
    assert camera.source == str(tmp_path / "clips/demo.mp4")
    assert camera.pacing == "realtime"
    assert config.reader.backend == "onnx"
    assert config.alerts.bind.startswith("tcp://127.0.0.1:")
    assert config.alerts.journal == Path("var/journal.sqlite")


def test_paths_given_in_the_file_are_relative_to_the_file(tmp_path):
    text = MINIMAL + "  journal: state/alerts.sqlite\nhotlists:\n  paths: [lists/a.csv]\n"
    config = load_config(write(tmp_path, text))
    assert config.alerts.journal == tmp_path / "state/alerts.sqlite"
    assert config.hotlists.paths == [tmp_path / "lists/a.csv"]


def test_stream_urls_and_camera_indexes_are_not_treated_as_paths(tmp_path):
    text = "cameras:\n  - {id: a, source: 'rtsp://10.0.0.5/stream'}\n  - {id: b, source: 0}\n"
    config = load_config(write(tmp_path, text + "alerts: {insecure: true}\n"))
    assert [c.source for c in config.cameras] == ["rtsp://10.0.0.5/stream", "0"]


def test_misspelt_key_is_named(tmp_path):
    path = write(tmp_path, MINIMAL + "reader:\n  min_confidnce: 0.4\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "line 7: reader.min_confidnce: unknown key" in message


def test_a_bad_value_in_a_list_is_named_with_its_line(tmp_path):
    text = (
        "cameras:\n  - id: a\n    source: x.mp4\n  - id: b\n    source: y.mp4\n    pacing: slow\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text + "alerts: {insecure: true}\n"))
    assert "line 6: cameras.1.pacing: Input should be 'realtime' or 'fast'" in str(error.value)


def test_bad_value_is_named_with_its_bounds(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, MINIMAL + "reader:\n  min_confidence: 1.5\n"))
    assert "reader.min_confidence" in str(error.value)
    assert "1" in str(error.value)


def test_secure_transport_needs_a_server_key(tmp_path):
    text = MINIMAL.replace("  insecure: true\n", "  insecure: false\n")
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert "server_secret_key" in str(error.value)
    assert "anpr-edge keys new" in str(error.value)


def test_duplicate_camera_ids_are_rejected(tmp_path):
    text = "cameras:\n  - {id: a, source: x.mp4}\n  - {id: a, source: y.mp4}\nalerts: {insecure: true}\n"
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(write(tmp_path, text))


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, MINIMAL + "reader: [unclosed\n"))
    assert "line 7" in str(error.value) or "line 6" in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")


def test_cli_reports_config_errors_without_a_traceback(tmp_path, capsys):
    path = write(tmp_path, "cameras: []\n")
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cameras" in err and "Traceback" not in err


def test_readme_config_reference_matches_the_schema():
    from edge.config import config_reference

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("<!-- CONFIG-REFERENCE -->") + len("<!-- CONFIG-REFERENCE -->")
    end = readme.index("<!-- /CONFIG-REFERENCE -->")
    assert readme[start:end].strip() == config_reference(), (
        "README.md config reference is stale: paste the output of `python -m edge.config`"
    )
