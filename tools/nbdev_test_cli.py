"""`nbdev-test` through whichever python runs this file (the GPU box has nbdev installed with --target, no console script)."""
from nbdev.test import nbdev_test
nbdev_test()
