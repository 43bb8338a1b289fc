"""Tests of addinbot."""
