"""Hugging Face Space entry point: ``python app.py``.

Builds the Blocks from the library, queues and launches it. Environment: ``DEEPFAKE_TEACHER`` /
``DEEPFAKE_STUDENT`` / ``DEEPFAKE_MODELS`` (models), ``GRADIO_SERVER_NAME`` (default 127.0.0.1 off a Space,
0.0.0.0 on one), ``GRADIO_SERVER_PORT`` (default 7860), ``DEEPFAKE_CONCURRENCY`` (default 2),
``DEEPFAKE_MAX_UPLOAD_MB`` (default 200), ``DEEPFAKE_TORCH_THREADS`` (default: the CPUs shared among the
concurrent analyses).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> None:
    import logging

    from deepfake_space import space  # before gradio and torch touch CUDA (ZeroGPU wants `spaces` first)
    from deepfake_space.errors import DeepfakeSpaceError
    from deepfake_space.ui import build_demo, max_upload_mb

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    space.configure_torch_threads(space.concurrency())
    try:
        demo = build_demo()
    except DeepfakeSpaceError as e:  # a missing or broken model: say which, without a traceback
        raise SystemExit(f"error: {e}") from None
    demo.queue(default_concurrency_limit=space.concurrency(), max_size=64)
    demo.launch(server_name=space.server_name(), server_port=space.server_port(),
                max_file_size=f"{max_upload_mb()}mb", show_error=False)


if __name__ == "__main__":
    main()
