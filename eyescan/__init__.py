"""eyescan: plugin-based command-line tool for ophthalmic image analysis.

Importing this package is cheap (no torch); heavy modules are imported lazily.
"""

__version__ = "0.1.0"

#: Version of the hook contract (hook names, arguments and return types).
#: A plugin declares the contract it was written for with a module attribute
#: ``EYESCAN_HOOK_CONTRACT = 1``; the core refuses plugins outside the range it
#: serves (``eyescan.plugins.registry.MIN_CONTRACT_VERSION`` .. this value).
HOOK_CONTRACT_VERSION = 2
