"""Writes data/product_reviews.tsv: the 3,708 Amazon product-review sentences with human sentiment ratings that
ship inside the vaderSentiment 3.3.2 source distribution (MIT; Hutto & Gilbert, ICWSM 2014; the sentences are
from Hu & Liu, KDD 2004). The wheel lacks the file, so this reads the sdist. Needs the package index once:

    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d /tmp/vader
    python data/get_product_reviews.py /tmp/vader/vaderSentiment-3.3.2.tar.gz
"""

import io
import sys
import tarfile
from pathlib import Path

MEMBER = "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"


def main(sdist: str) -> None:
    with tarfile.open(sdist) as outer:  # the sdist holds a second archive with the ratings
        inner = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as data:
        text = data.extractfile(MEMBER).read().decode("utf-8-sig")
    out = Path(__file__).with_name("product_reviews.tsv")
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    out.write_text("id\tmean_rating\ttext\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out.name}: {len(lines)} sentences")


if __name__ == "__main__":
    main(sys.argv[1])
