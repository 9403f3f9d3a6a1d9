import sys

from training.pretrain.stage import main

sys.exit(main())
