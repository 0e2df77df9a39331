"""``python -m train_small`` runs the trainer (same flags as ``python -m train_small.train``)."""

import sys

from train_small.train import main

sys.exit(main())
