"""anpr-edge: number-plate recognition on the compute box of a parked ANPR vehicle."""

__version__ = "0.1.0"
