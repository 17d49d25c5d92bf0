"""Tests of countis-bridge."""
