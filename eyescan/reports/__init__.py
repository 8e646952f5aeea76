"""Outputs people and scripts read: JSON record schemas, HTML reports and figures."""
