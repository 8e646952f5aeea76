"""Images: reading and writing, fundus preprocessing, overlays and augmentation."""
