"""Tests of the conveyor command line, its management functions and the demo."""
