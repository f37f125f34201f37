"""Ultralytics' offline settings: set for a block and restored; settings and fonts kept in
the provider's own directory (no Ultralytics needed)."""

from __future__ import annotations

import os

from worker.executors.yolo.offline import default_config_dir, offline_environment, seed_fonts


def test_offline_variables_are_set_inside_and_restored_after(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    monkeypatch.delenv("YOLO_AUTOINSTALL", raising=False)
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    with offline_environment(tmp_path):
        assert os.environ["YOLO_OFFLINE"] == "1"
        assert os.environ["YOLO_AUTOINSTALL"] == "0"
        assert os.environ["YOLO_CONFIG_DIR"] == str(tmp_path)
    assert os.environ["YOLO_OFFLINE"] == "0"
    assert "YOLO_AUTOINSTALL" not in os.environ and "YOLO_CONFIG_DIR" not in os.environ


def test_offline_variables_are_restored_when_the_block_raises(monkeypatch, tmp_path):
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    try:
        with offline_environment(tmp_path):
            raise RuntimeError("training failed")
    except RuntimeError:
        pass
    assert "YOLO_OFFLINE" not in os.environ


def test_config_dir_follows_the_provider_setting_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DCM_YOLO_CONFIG_DIR", str(tmp_path / "mine"))
    assert default_config_dir() == tmp_path / "mine"
    monkeypatch.delenv("DCM_YOLO_CONFIG_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_config_dir() == tmp_path / "cache" / "dcm" / "ultralytics"


def test_fonts_are_seeded_once_under_the_names_ultralytics_wants(tmp_path):
    source = tmp_path / "DejaVuSans.ttf"
    source.write_bytes(b"font")
    target = tmp_path / "config"
    (target).mkdir()
    (target / "Arial.ttf").write_bytes(b"already here")
    seed_fonts(target, source)
    assert (target / "Arial.ttf").read_bytes() == b"already here"
    assert (target / "Arial.Unicode.ttf").read_bytes() == b"font"
