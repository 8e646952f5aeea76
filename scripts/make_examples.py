"""Write the bundled example images from scikit-image's CC0 retina photograph."""

from pathlib import Path

from PIL import Image
from skimage import data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    image = Image.fromarray(data.retina())  # Häggström, Wikimedia Commons, CC0 1.0
    image.resize((584, 584), Image.LANCZOS).save(
        EXAMPLES / "haggstrom_fundus_left_584.jpg", quality=92
    )
    image.resize((900, 900), Image.LANCZOS).transpose(Image.FLIP_LEFT_RIGHT).save(
        EXAMPLES / "haggstrom_fundus_mirrored_900.jpg", quality=92
    )


if __name__ == "__main__":
    main()
