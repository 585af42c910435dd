"""deepfake_space: teacher and distilled-student deepfake detectors, side by side."""

__version__ = "0.1.0"
