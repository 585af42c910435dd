"""Training, distillation, evaluation and publishing of deepfake_space detectors."""
