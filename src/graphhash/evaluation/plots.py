"""``dvc plots show`` without the network: DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so
offline it draws nothing. The repository's DVC config (``.dvc/config``: ``plots.html_template``) names its own page,
``.dvc/plots/page.html``, which loads one local script instead, ``.dvc/plots/vega.js`` (the page, written to
``dvc_plots/index.html``, finds it at ``../.dvc/plots/vega.js``): the three libraries bundled by ``vl-convert-python``
(a pinned dependency, which ships them), written once by ``write_chart_library`` (``graphhash plots`` does it, then
runs ``dvc plots show``). It is generated, not ours, so git ignores it; without it the page says what to run.
"""

from __future__ import annotations

from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_text

LIBRARY = Path(".dvc") / "plots" / "vega.js"  # beside the page template, relative to the repository's root
VEGA_LITE = "5.21"  # DVC's templates are Vega-Lite 5 specifications


def write_chart_library(root: str | Path = ".", *, force: bool = False) -> Path:
    """``<root>/.dvc/plots/vega.js``, the bundled chart libraries, unless it is there already (``force``: rewrite)."""
    path = Path(root) / LIBRARY
    if path.is_file() and not force:
        return path
    if not path.parent.is_dir():
        raise GraphhashError(f"{Path(root).resolve()}: not a DVC repository of graphhash (no {path.parent})")
    import vl_convert

    write_text(path, vl_convert.javascript_bundle(vl_version=VEGA_LITE))
    return path
