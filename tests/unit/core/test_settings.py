from __future__ import annotations

from pathlib import Path

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.settings import Settings


def test_defaults_live_under_mediator_home(mediator_home: Path) -> None:
    s = Settings.load()
    assert s.data_dir == mediator_home / "data"
    assert s.download_dir == mediator_home / "downloads"


def test_save_and_load_round_trip(mediator_home: Path) -> None:
    s = Settings(display_name="Ada", update_check_minutes=30, download_dir=Path("/tmp/dl"))
    path = s.save()
    assert path == mediator_home / "config" / "settings.json"
    assert Settings.load() == s


def test_every_field_is_described() -> None:
    described = Settings.field_info()
    assert [f.name for f in described] == list(Settings().to_json())
    assert all(f.title and f.description for f in described)


def test_bad_files_and_values_are_clear_errors(mediator_home: Path) -> None:
    path = mediator_home / "config" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        Settings.load()
    path.write_text('{"update_check_minutes": 20000}')
    with pytest.raises(ValidationError, match="between 1 minute and 7 days, or 0"):
        Settings.load()
    path.write_text("[1, 2]")
    with pytest.raises(ValidationError, match="does not hold an object"):
        Settings.load()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"display_name": 5}', "display_name must be text, not 5"),
        ('{"download_layout": ["x"]}', "download_layout must be text"),
        ('{"update_check_minutes": "x"}', "update_check_minutes must be a whole number"),
        ('{"discovery": 1}', "discovery must be true or false"),
        ('{"peers": [1]}', "peers must be a list of host:port texts"),
        ('{"peers": 5}', "wrong type"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_clear_error(mediator_home: Path, text: str, message: str) -> None:
    path = mediator_home / "config" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValidationError, match=message):
        Settings.load()


def test_unknown_keys_are_ignored_with_a_warning(
    mediator_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = mediator_home / "config" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"display_name": "Bo", "colour": "blue"}')
    assert Settings.load().display_name == "Bo"
    assert "colour" in caplog.text
