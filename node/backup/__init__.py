"""Backing up a node to one archive and restoring it on a fresh machine.

The package's modules: `archive.py` (the archive's layout, names and limits, writing its members
and reading its per-file CARs back), `export.py` (`export_node`), `restore.py` (`import_node`).
Its public names are all importable from `node.backup`.
"""

from node.backup.archive import BackupSummary, describe
from node.backup.export import export_node
from node.backup.restore import import_node

__all__ = ["BackupSummary", "describe", "export_node", "import_node"]
