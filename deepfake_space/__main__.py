import sys

from deepfake_space.cli import main

sys.exit(main())
