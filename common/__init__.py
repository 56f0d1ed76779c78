"""Neutral helpers every package uses: the user-error type, atomic outputs, integer datatypes."""
