"""Tests of the Home Assistant integration (Python 3.13, pytest-homeassistant-custom-component)."""
