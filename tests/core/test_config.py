"""Settings come from CITYBRAIN_* variables and citybrain.toml; a bad value is refused with one
line naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.config import DEMO_SECRET_PLACEHOLDER, SettingError, load_settings

GOOD_SECRET = "s" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray CITYBRAIN_* variable or citybrain.toml from the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith("CITYBRAIN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _toml(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "citybrain.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body, encoding="utf-8")
    monkeypatch.setenv("CITYBRAIN_CONFIG", str(path))
    return path


def test_defaults_use_sqlite_under_the_data_dir():
    s = load_settings()
    assert s.port == 8000 and s.host == "127.0.0.1" and s.default_language == "zh_CN"
    assert s.is_sqlite and s.effective_database_url == f"sqlite:///{(Path('var') / 'citybrain.db').resolve()}"


def test_settings_come_from_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("CITYBRAIN_PORT", "9123")
    monkeypatch.setenv("CITYBRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CITYBRAIN_SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("CITYBRAIN_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CITYBRAIN_DATABASE_URL", "postgresql+psycopg://u@db.example/citybrain")
    s = load_settings()
    assert s.port == 9123 and s.data_dir == tmp_path / "data" and s.secret_key == GOOD_SECRET
    assert s.log_level == "DEBUG" and not s.is_sqlite
    assert s.effective_database_url == "postgresql+psycopg://u@db.example/citybrain"


def test_settings_come_from_the_toml_file_named_by_citybrain_config(monkeypatch, tmp_path):
    _toml(tmp_path, f'port = 8123\nhost = "0.0.0.0"\nsecret_key = "{GOOD_SECRET}"\n'
                    'default_language = "en"\nlogin_max_failures = 3\n', monkeypatch)
    s = load_settings()
    assert (s.port, s.host, s.secret_key, s.default_language, s.login_max_failures) == (
        8123, "0.0.0.0", GOOD_SECRET, "en", 3)


def test_citybrain_toml_in_the_working_directory_is_read_by_default(tmp_path):
    (tmp_path / "citybrain.toml").write_text("port = 8124\n", encoding="utf-8")
    assert load_settings().port == 8124


def test_environment_overrides_the_toml_file_and_arguments_override_both(monkeypatch, tmp_path):
    _toml(tmp_path, "port = 8123\nhost = \"0.0.0.0\"\n", monkeypatch)
    monkeypatch.setenv("CITYBRAIN_PORT", "8200")
    s = load_settings()
    assert (s.port, s.host) == (8200, "0.0.0.0")
    assert load_settings(port=8300).port == 8300


@pytest.mark.parametrize(("name", "value"), [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("PORT", "0"),
    ("DATABASE_URL", "mysql://x"),
    ("DATABASE_URL", "postgres-ish"),
    ("SECRET_KEY", "too-short"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("DEFAULT_LANGUAGE", "fr"),
    ("COOKIE_SECURE", "maybe"),
    ("LOGIN_MAX_FAILURES", "0"),
    ("SESSION_MAX_AGE_S", "1"),
])
def test_a_bad_environment_value_is_refused_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(f"CITYBRAIN_{name}", value)
    with pytest.raises(SettingError) as info:
        load_settings()
    message = str(info.value)
    assert f"CITYBRAIN_{name}" in message and "\n" not in message
    assert info.value.name.upper() == name


def test_a_bad_toml_value_is_refused_naming_the_setting(monkeypatch, tmp_path):
    _toml(tmp_path, 'port = "eighty"\n', monkeypatch)
    with pytest.raises(SettingError, match="CITYBRAIN_PORT"):
        load_settings()


def test_an_unknown_toml_key_is_refused_naming_it(monkeypatch, tmp_path):
    _toml(tmp_path, 'prot = 8000\n', monkeypatch)
    with pytest.raises(SettingError, match="CITYBRAIN_PROT"):
        load_settings()


def test_a_malformed_toml_file_is_refused_naming_citybrain_config(monkeypatch, tmp_path):
    path = _toml(tmp_path, 'port = \n[[[', monkeypatch)
    with pytest.raises(SettingError) as info:
        load_settings()
    assert "CITYBRAIN_CONFIG" in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file_named_by_citybrain_config_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("CITYBRAIN_CONFIG", str(tmp_path / "nowhere.toml"))
    with pytest.raises(SettingError, match="CITYBRAIN_CONFIG"):
        load_settings()


def test_serving_without_a_secret_is_refused_naming_citybrain_secret_key():
    with pytest.raises(SettingError, match="CITYBRAIN_SECRET_KEY"):
        load_settings().check_serving()


def test_the_demo_placeholder_secret_is_refused_as_a_secret():
    with pytest.raises(SettingError, match="CITYBRAIN_SECRET_KEY"):
        load_settings(secret_key=DEMO_SECRET_PLACEHOLDER)


def test_serving_with_a_real_secret_is_allowed(monkeypatch):
    monkeypatch.setenv("CITYBRAIN_SECRET_KEY", GOOD_SECRET)
    load_settings().check_serving()
