"""eyescan: plugin-based command-line tool for ophthalmic image analysis.

Importing this package is cheap (no torch); heavy modules are imported lazily.
"""

__version__ = "0.1.0"

#: Version of the hook contract (hook names, arguments and return types).
#: A plugin declares the contract it was written for with
#: ``EYESCAN_CONTRACT = ">=1,<2"``-style ranges (see ``eyescan.plugins``).
HOOK_CONTRACT_VERSION = 1
